package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/archive/transcode"
	"github.com/lumenpacs/lumen/dicomweb/auth"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// storeSCP runs DCMTK's storescp (with extra options) on a free loopback port, writing
// what it receives to a new directory; it returns the port and the directory.
func storeSCP(t *testing.T, args ...string) (int, string) {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	port, _ := strconv.Atoi(p)
	return storeSCPAt(t, port, args...)
}

// storeSCPAt is storeSCP on a given port.
func storeSCPAt(t *testing.T, port int, args ...string) (int, string) {
	t.Helper()
	p := strconv.Itoa(port)
	addr := "127.0.0.1:" + p
	dir := t.TempDir()
	cmd := exec.Command(dcmtkTool(t, "storescp"), append(append([]string{"-aet", "DEST", "-od", dir, "-uf", "+B"}, args...), p)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return port, dir
}

// received maps the SOP Instance UID (file name, storescp -uf) of each file in dir to
// its data set bytes (after the meta information) and transfer syntax.
func received(t *testing.T, dir string) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		r := bytes.NewReader(b)
		ts, err := transcode.SkipMeta(r)
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		rest := b[len(b)-r.Len():]
		uid := strings.TrimSuffix(e.Name(), ".dcm")
		if uid != "" && (uid[0] < '0' || uid[0] > '9') {
			uid = uid[strings.Index(uid, ".")+1:] // storescp -uf names files <modality>.<SOP Instance UID>
		}
		out[uid] = [2]string{string(rest), ts}
	}
	return out
}

// storedDataSet is the data set bytes and transfer syntax of a PS3.10 object.
func storedDataSet(t *testing.T, data []byte) (string, string) {
	t.Helper()
	r := bytes.NewReader(data)
	ts, err := transcode.SkipMeta(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(data[len(data)-r.Len():]), ts
}

// TestCMoveCGet retrieves with DCMTK's movescu (to storescp) and getscu: a study, a
// series and one instance in both information models, byte-identical to what Lumen
// stores; a JPEG lossless study as stored to a destination that accepts it and
// decompressed to one that does not; and the failures: unknown destination, destination
// down, destination refusing the SOP class.
func TestCMoveCGet(t *testing.T) {
	destPort, destDir := storeSCP(t)
	allPort, allDir := storeSCP(t, "+xa") // accepts every transfer syntax DCMTK knows
	// NOSTORE accepts associations but no storage SOP class.
	noStore := &dimse.Server{AETitle: "NOSTORE"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go noStore.Serve(ln)
	t.Cleanup(func() { noStore.Shutdown(context.Background()) })
	downAddr := freeAddr(t) // nothing listens there
	port := func(a string) int { _, p, _ := net.SplitHostPort(a); n, _ := strconv.Atoi(p); return n }

	s := startLumen(t, func(c *Config) {
		c.DIMSE.Peers = []PeerConfig{
			{AETitle: "DEST", Host: "127.0.0.1", Port: destPort},
			{AETitle: "ALLTS", Host: "127.0.0.1", Port: allPort},
			{AETitle: "NOSTORE", Host: "127.0.0.1", Port: port(ln.Addr().String())},
			{AETitle: "DOWN", Host: "127.0.0.1", Port: port(downAddr)},
		}
	})
	corpus, err := gen.Corpus(31)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, "http://"+s.addr.HTTP+"/dicom-web", corpus)
	host, lport, _ := net.SplitHostPort(s.addr.DIMSE)
	var ct []gen.Object
	for _, o := range corpus {
		if o.Modality == "CT" {
			ct = append(ct, o)
		}
	}
	want := map[string]string{}
	for _, o := range corpus {
		want[o.SOPInstanceUID], _ = storedDataSet(t, o.Data)
	}
	check := func(name, dir string, uids []string) {
		t.Helper()
		got := received(t, dir)
		if len(got) != len(uids) {
			t.Fatalf("%s: %d files received, want %d", name, len(got), len(uids))
		}
		for _, u := range uids {
			if got[u][0] != want[u] {
				t.Fatalf("%s: %s is not byte-identical to the stored data set", name, u)
			}
		}
		for _, e := range must(os.ReadDir(dir)) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	var ctUIDs []string
	for _, o := range ct {
		ctUIDs = append(ctUIDs, o.SOPInstanceUID)
	}
	study, series, one := ct[0].StudyUID, ct[0].SeriesUID, ct[3].SOPInstanceUID
	var patientUIDs []string
	for _, o := range corpus {
		if o.PatientID == ct[0].PatientID {
			patientUIDs = append(patientUIDs, o.SOPInstanceUID)
		}
	}
	for _, c := range []struct {
		name string
		keys []string
		uids []string
	}{
		{"study, study root", []string{"-S", "QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + study}, nil},
		{"series, study root", []string{"-S", "QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series}, ctUIDs},
		{"instance, study root", []string{"-S", "QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series, "SOPInstanceUID=" + one}, []string{one}},
		{"study, patient root", []string{"-P", "QueryRetrieveLevel=STUDY", "PatientID=" + ct[0].PatientID, "StudyInstanceUID=" + study}, nil},
		{"series, patient root", []string{"-P", "QueryRetrieveLevel=SERIES", "PatientID=" + ct[0].PatientID, "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series}, ctUIDs},
		{"instance, patient root", []string{"-P", "QueryRetrieveLevel=IMAGE", "PatientID=" + ct[0].PatientID, "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series, "SOPInstanceUID=" + one}, []string{one}},
		{"patient, patient root", []string{"-P", "QueryRetrieveLevel=PATIENT", "PatientID=" + ct[0].PatientID}, patientUIDs},
	} {
		uids := c.uids
		if uids == nil {
			for _, o := range corpus {
				if o.StudyUID == study {
					uids = append(uids, o.SOPInstanceUID)
				}
			}
		}
		var keys []string
		var model string
		for _, k := range c.keys {
			if strings.HasPrefix(k, "-") {
				model = k
			} else {
				keys = append(keys, k)
			}
		}
		if f := finalResponse(moveWith(t, model, "DEST", host, lport, keys)); f.status != "0x0000" || f.completed != len(uids) {
			t.Fatalf("%s: movescu: %s, %d completed:\n%s", c.name, f.status, f.completed, f.everything)
		}
		check("C-MOVE "+c.name, destDir, uids)
	}

	// A JPEG lossless study: as stored to a destination accepting it, decompressed to
	// one accepting uncompressed syntaxes only (the pixels are the original's).
	jpeg := jpegCT(t, ct)
	stowAll(t, "http://"+s.addr.HTTP+"/dicom-web", jpeg)
	jstudy := jpeg[0].StudyUID
	var jUIDs []string
	for _, o := range jpeg {
		jUIDs = append(jUIDs, o.SOPInstanceUID)
		want[o.SOPInstanceUID], _ = storedDataSet(t, o.Data)
	}
	if out := moveWith(t, "-S", "ALLTS", host, lport, []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + jstudy}); finalResponse(out).status != "0x0000" {
		t.Fatalf("compressed study to ALLTS: %s", out)
	}
	for u, got := range received(t, allDir) {
		if got[1] != "1.2.840.10008.1.2.4.70" || got[0] != want[u] {
			t.Fatalf("compressed study to ALLTS: %s arrived in %s, or altered", u, got[1])
		}
	}
	if out := moveWith(t, "-S", "DEST", host, lport, []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + jstudy}); finalResponse(out).status != "0x0000" {
		t.Fatalf("compressed study to DEST: %s", out)
	}
	got := received(t, destDir)
	if len(got) != len(jpeg) {
		t.Fatalf("compressed study to DEST: %d received", len(got))
	}
	for i, o := range jpeg {
		g := got[o.SOPInstanceUID]
		if g[1] != dimse.ExplicitVRLittleEndian || !bytes.Equal(pixelsOf(t, []byte(g[0]), g[1]), pixelsOf(t, ct[i].Data, "")) {
			t.Fatalf("compressed study to DEST: %s arrived in %s, or its pixels differ from the original", o.SOPInstanceUID, g[1])
		}
	}
	for _, d := range []string{destDir, allDir} {
		for _, e := range must(os.ReadDir(d)) {
			os.Remove(filepath.Join(d, e.Name()))
		}
	}

	// Failures: the status, the counts and a readable comment; nothing stuck.
	for _, c := range []struct {
		dest, status, comment string
		failed                int
	}{
		{"NOWHERE", "0xa801", "move destination NOWHERE unknown", 0},
		{"DOWN", "0xa702", "cannot connect", len(ctUIDs)},
		{"NOSTORE", "0xa702", "does not accept SOP class", len(ctUIDs)},
	} {
		f := finalResponse(moveWith(t, "-S", c.dest, host, lport, []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series}))
		if f.status != c.status || f.failed != c.failed || f.completed != 0 {
			t.Errorf("C-MOVE to %s: %s, %d failed; want %s, %d failed:\n%s", c.dest, f.status, f.failed, c.status, c.failed, f.everything)
		}
	}
	// The same with Lumen's own SCU, which reads the ErrorComment; and a C-CANCEL.
	scu, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CallingAETitle: "MOVER", CalledAETitle: "LUMEN",
		Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StudyRootMove, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer scu.Release()
	ident := func(level string, keys ...*dcm.Element) []byte {
		ds := &dcm.Dataset{}
		ds.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", level))
		for _, k := range keys {
			ds.Set(k)
		}
		b, err := ds.Encode(dcm.ExplicitVRLittleEndian)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seriesID := ident("SERIES", dcm.NewString(dcm.TagStudyInstanceUID, "UI", study), dcm.NewString(dcm.TagSeriesInstanceUID, "UI", series))
	for _, c := range []struct {
		dest, comment string
		code          uint16
	}{
		{"NOWHERE", "move destination NOWHERE unknown: not in dimse.peers", dimse.StatusMoveDestinationUnknown},
		{"DOWN", "cannot connect to the move destination: connection refused", dimse.StatusOutOfResourcesSubops},
		{"NOSTORE", "the destination does not accept SOP class 1.2.840.10008.5.1.4", dimse.StatusOutOfResourcesSubops},
	} {
		st, n, err := scu.Move(context.Background(), dimse.StudyRootMove, c.dest, seriesID, func(dimse.SubOperations) bool { return true })
		// The requestor learns why, never where a peer lives (its host and port).
		if err != nil || st.Code != c.code || !strings.HasPrefix(st.ErrorComment, c.comment) || strings.Contains(st.ErrorComment, "127.0.0.1") ||
			c.code == dimse.StatusOutOfResourcesSubops && n.Failed != len(ctUIDs) {
			t.Errorf("C-MOVE to %s: %v 0x%04X %q %+v; want 0x%04X %q", c.dest, err, st.Code, st.ErrorComment, n, c.code, c.comment)
		}
	}
	pendings := 0
	st, n, err := scu.Move(context.Background(), dimse.StudyRootMove, "DEST", seriesID, func(dimse.SubOperations) bool { pendings++; return pendings < 3 })
	if err != nil || st.Code != dimse.StatusCancel || n.Completed < 3 || n.Completed >= len(ctUIDs) || n.Remaining != len(ctUIDs)-n.Completed {
		t.Fatalf("C-CANCEL: %v 0x%04X %+v after %d pending responses", err, st.Code, n, pendings)
	}
	for _, e := range must(os.ReadDir(destDir)) {
		os.Remove(filepath.Join(destDir, e.Name()))
	}
	if out := moveWith(t, "-S", "DEST", host, lport, []string{"QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series, "SOPInstanceUID=" + one}); finalResponse(out).status != "0x0000" {
		t.Fatalf("after the failures: %s", out)
	}
	check("C-MOVE after the failures", destDir, []string{one})

	// C-GET: the same retrievals on the requestor's association.
	get := func(model string, extra []string, keys ...string) (string, string) {
		t.Helper()
		dir := t.TempDir()
		args := append([]string{"-d", model, "-aet", "GETTER", "-aec", "LUMEN", "-od", dir, "+B"}, extra...)
		for _, k := range keys {
			args = append(args, "-k", k)
		}
		cmd := exec.Command(dcmtkTool(t, "getscu"), append(args, host, lport)...)
		cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
		out, _ := cmd.CombinedOutput()
		return string(out), dir
	}
	studyUIDs := func(st string) []string {
		var u []string
		for _, o := range append(append([]gen.Object(nil), corpus...), jpeg...) {
			if o.StudyUID == st {
				u = append(u, o.SOPInstanceUID)
			}
		}
		return u
	}
	for _, c := range []struct {
		name  string
		model string
		extra []string
		keys  []string
		uids  []string
	}{
		{"study, study root", "-S", nil, []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + study}, studyUIDs(study)},
		{"series, study root", "-S", nil, []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series}, ctUIDs},
		{"instance, study root", "-S", nil, []string{"QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series, "SOPInstanceUID=" + one}, []string{one}},
		{"study, patient root", "-P", nil, []string{"QueryRetrieveLevel=STUDY", "PatientID=" + ct[0].PatientID, "StudyInstanceUID=" + study}, studyUIDs(study)},
		{"series, patient root", "-P", nil, []string{"QueryRetrieveLevel=SERIES", "PatientID=" + ct[0].PatientID, "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series}, ctUIDs},
		{"instance, patient root", "-P", nil, []string{"QueryRetrieveLevel=IMAGE", "PatientID=" + ct[0].PatientID, "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series, "SOPInstanceUID=" + one}, []string{one}},
		{"compressed study, as stored", "-S", []string{"+xs"}, []string{"QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + jstudy}, jUIDs},
	} {
		out, dir := get(c.model, c.extra, c.keys...)
		if f := finalResponse(out); f.status != "0x0000" || f.completed != len(c.uids) {
			t.Fatalf("C-GET %s: getscu: %s, %d completed:\n%s", c.name, f.status, f.completed, out)
		}
		got := received(t, dir)
		if len(got) != len(c.uids) {
			t.Fatalf("C-GET %s: %d files, want %d\n%s", c.name, len(got), len(c.uids), out)

		}
		for _, u := range c.uids {
			if got[u][0] != want[u] {
				t.Fatalf("C-GET %s: %s is not byte-identical to the stored data set (arrived in %s)", c.name, u, got[u][1])
			}
		}
	}
	// A compressed study to a requestor accepting uncompressed only: decompressed.
	out, dir := get("-S", nil, "QueryRetrieveLevel=STUDY", "StudyInstanceUID="+jstudy)
	got = received(t, dir)
	if len(got) != len(jpeg) {
		t.Fatalf("C-GET compressed study decompressed: %d files\n%s", len(got), out)
	}
	for i, o := range jpeg {
		if g := got[o.SOPInstanceUID]; g[1] != dimse.ExplicitVRLittleEndian || !bytes.Equal(pixelsOf(t, []byte(g[0]), g[1]), pixelsOf(t, ct[i].Data, "")) {
			t.Fatalf("C-GET compressed study: %s arrived in %s, or its pixels differ", o.SOPInstanceUID, g[1])
		}
	}
}

// jpegCT compresses CT objects with dcmcjpeg (JPEG Lossless SV1) into a new study (new
// UIDs, so that both stay stored), in the order given.
func jpegCT(t *testing.T, ct []gen.Object) []gen.Object {
	t.Helper()
	dir := t.TempDir()
	var out []gen.Object
	for i, o := range ct {
		in, res := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
		os.WriteFile(in, o.Data, 0o644)
		study, series, sop := o.StudyUID+".9", o.SeriesUID+".9", o.SOPInstanceUID+".9"
		runDCMTK(t, "dcmodify", "-nb", "-m", "(0020,000D)="+study, "-m", "(0020,000E)="+series, "-m", "(0008,0018)="+sop, in)
		runDCMTK(t, "dcmcjpeg", "+e1", in, res)
		b, err := os.ReadFile(res)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, gen.Object{Name: o.Name, PatientID: o.PatientID, StudyUID: study, SeriesUID: series, SOPInstanceUID: sop, SOPClassUID: o.SOPClassUID, Modality: "CT", InstanceNumber: i + 1, NumberOfFrames: 1, Data: b})
	}
	return out
}

// pixelsOf returns the native pixel data of a data set in ts ("" : a PS3.10 file).
func pixelsOf(t *testing.T, data []byte, ts string) []byte {
	t.Helper()
	var f *dcm.File
	var err error
	if ts == "" {
		f, err = dcm.Parse(bytes.NewReader(data), nil)
	} else {
		f, err = dcm.ParseDataset(bytes.NewReader(data), ts, 0, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	pl := f.PixelLayout()
	if pl == nil || pl.Encapsulated {
		t.Fatal("no native pixel data")
	}
	return data[pl.Offset : pl.Offset+int64(pl.NumberOfFrames)*pl.FrameLength]
}

// final is the last response movescu or getscu (-d) reported: its status and counts.
type final struct {
	status            string // "0x0000"
	completed, failed int
	everything        string
}

func finalResponse(out string) final {
	f := final{everything: out}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		l = strings.TrimPrefix(strings.TrimPrefix(l, "D: "), "I: ")
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimPrefix(strings.TrimSpace(k), "Number of "), strings.TrimSpace(v)
		switch k {
		case "DIMSE Status":
			f.status, _, _ = strings.Cut(v, ":")
		case "Completed Suboperations":
			f.completed, _ = strconv.Atoi(v)
		case "Failed Suboperations":
			f.failed, _ = strconv.Atoi(v)
		}
	}
	return f
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// moveWith runs movescu with an information model option and keys.
func moveWith(t *testing.T, model, dest, host, port string, keys []string) string {
	t.Helper()
	args := []string{"-d", model, "-aet", "MOVER", "-aec", "LUMEN", "-aem", dest}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	cmd := exec.Command(dcmtkTool(t, "movescu"), append(args, host, port)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, _ := cmd.CombinedOutput()
	return string(out)
}

// TestSend checks `lumen send` and POST /api/v1/send against storescp: what is sent
// arrives byte-identical, each instance gets a result line, and the refusals. The HTTP
// push runs with authentication on: an account with the send role (or admin) may push,
// others may not.
func TestSend(t *testing.T) {
	destPort, destDir := storeSCP(t)
	s := startLumen(t, func(c *Config) {
		c.DIMSE.Peers = []PeerConfig{{AETitle: "DEST", Host: "127.0.0.1", Port: destPort}}
		c.DIMSE.Addr = "" // sending only
		c.Auth = AuthConfig{Mode: "on", Tokens: []auth.StaticToken{
			{Name: "pusher", SHA256: digest("push-secret"), Roles: []string{"send"}},
			{Name: "ops", SHA256: digest("admin-secret"), Roles: []string{"admin"}},
			{Name: "gw", SHA256: digest("writer-secret"), Roles: []string{"read", "write"}},
		}}
	})
	corpus, err := gen.Corpus(33)
	if err != nil {
		t.Fatal(err)
	}
	stowAll(t, "http://"+s.addr.HTTP+"/dicom-web", corpus, "writer-secret")
	want := map[string]string{}
	var mr []string
	study := ""
	for _, o := range corpus {
		want[o.SOPInstanceUID], _ = storedDataSet(t, o.Data)
		if o.Modality == "MR" {
			mr = append(mr, o.SOPInstanceUID)
			study = o.StudyUID
		}
	}
	clear := func() {
		for _, e := range must(os.ReadDir(destDir)) {
			os.Remove(filepath.Join(destDir, e.Name()))
		}
	}
	checkDir := func(name string, uids []string) {
		t.Helper()
		got := received(t, destDir)
		if len(got) != len(uids) {
			t.Fatalf("%s: %d received, want %d", name, len(got), len(uids))
		}
		for _, u := range uids {
			if got[u][0] != want[u] {
				t.Fatalf("%s: %s altered", name, u)
			}
		}
		clear()
	}
	dest := fmt.Sprintf("DEST@127.0.0.1:%d", destPort)
	out, errOut, code := runCLI(t, "send", "--data-dir", s.c.DataDir, "--to", dest, "--study", study)
	if code != 0 || strings.Count(out, "OK ") != len(mr) || !strings.Contains(out, fmt.Sprintf("sent %d of %d instances (0 failed)", len(mr), len(mr))) {
		t.Fatalf("lumen send: %d\n%s\n%s", code, out, errOut)
	}
	checkDir("lumen send --study", mr)
	if _, _, code := runCLI(t, "send", "--data-dir", s.c.DataDir, "--to", dest, "--query", "Modality=MR", "--query", "SeriesNumber=4"); code != 0 {
		t.Fatal("lumen send --query")
	}
	if got := received(t, destDir); len(got) != 5 { // the corpus' second MR series has 5 images
		t.Fatalf("lumen send --query: %d received", len(got))
	}
	clear()
	for _, args := range [][]string{{"--study", "1.2.3.404"}, {"--query", "Nonsense=1"}, {}} {
		if _, _, code := runCLI(t, append([]string{"send", "--data-dir", s.c.DataDir, "--to", dest}, args...)...); code == 0 {
			t.Errorf("lumen send %v succeeded", args)
		}
	}

	// HTTP push.
	push := func(token string, body string) (int, string) {
		return httpDo(t, http.MethodPost, "http://"+s.addr.HTTP+"/api/v1/send", token, strings.NewReader(body))
	}
	body := `{"destination":"DEST","studyInstanceUID":"` + study + `"}`
	if code, _ := push("", body); code != http.StatusUnauthorized {
		t.Fatalf("push without a token: %d", code)
	}
	if code, _ := push("wrong", body); code != http.StatusUnauthorized {
		t.Fatalf("push with a wrong token: %d", code)
	}
	if code, _ := push("writer-secret", body); code != http.StatusForbidden {
		t.Fatalf("push by an account without the send role: %d", code)
	}
	if code, b := push("push-secret", `{"destination":"ELSEWHERE","studyInstanceUID":"`+study+`"}`); code != http.StatusBadRequest || !strings.Contains(b, "not a known peer") {
		t.Fatalf("push to an unknown peer: %d %s", code, b)
	}
	code, b := push("push-secret", body)
	lines := strings.Split(strings.TrimSpace(b), "\n")
	if code != http.StatusOK || len(lines) != len(mr)+1 || !strings.Contains(lines[len(lines)-1], `"outcome":"done"`) || strings.Count(b, `"outcome":"ok"`) != len(mr) {
		t.Fatalf("push: %d\n%s", code, b)
	}
	checkDir("POST /api/v1/send", mr)
	if code, b := push("admin-secret", body); code != http.StatusOK || strings.Count(b, `"outcome":"ok"`) != len(mr) {
		t.Fatalf("push by an admin: %d\n%s", code, b)
	}
	checkDir("POST /api/v1/send by an admin", mr)
}
