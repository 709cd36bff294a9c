package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec/openjpeg"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/httpkit/auth"
	"github.com/lumenpacs/lumen/service/transcode"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// storeSCP runs DCMTK's storescp (with extra options) on a free loopback port, writing
// what it receives to a new directory; it returns the port and the directory.
func storeSCP(t *testing.T, args ...string) (int, string) {
	t.Helper()
	// A port found free may be taken before storescp binds it (by another test's
	// outgoing connection, say): then try another.
	for attempt := 1; ; attempt++ {
		_, p, _ := net.SplitHostPort(freeAddr(t))
		port, _ := strconv.Atoi(p)
		if dir, err := startStoreSCP(t, port, args...); err == nil {
			return port, dir
		} else if attempt == 3 {
			t.Fatal(err)
		}
	}
}

// storeSCPAt is storeSCP on a given port.
func storeSCPAt(t *testing.T, port int, args ...string) (int, string) {
	t.Helper()
	dir, err := startStoreSCP(t, port, args...)
	if err != nil {
		t.Fatal(err)
	}
	return port, dir
}

// startStoreSCP starts storescp on port, storing into a new directory, and waits until
// it listens; it fails when storescp exits first (the port taken) or never listens.
func startStoreSCP(t *testing.T, port int, args ...string) (string, error) {
	t.Helper()
	p := strconv.Itoa(port)
	addr := "127.0.0.1:" + p
	dir := t.TempDir()
	cmd := exec.Command(dcmtkTool(t, "storescp"), append(append([]string{"-aet", "DEST", "-od", dir, "-uf", "+B"}, args...), p)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	for i := 0; i < 400; i++ {
		select {
		case <-exited:
			return "", fmt.Errorf("storescp on port %d exited: %s", port, out.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			select {
			case <-exited:
				return "", fmt.Errorf("storescp on port %d exited: %s", port, out.String())
			case <-time.After(20 * time.Millisecond): // still running: it was storescp that answered
				return dir, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("storescp on port %d does not listen after 20 s: %s", port, out.String())
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
	// A sub-operation in flight when the cancel arrives may end failed (interrupted):
	// every sub-operation is still counted once.
	if err != nil || st.Code != dimse.StatusCancel || n.Completed < 3 || n.Completed >= len(ctUIDs) || n.Failed > 1 ||
		n.Remaining != len(ctUIDs)-n.Completed-n.Failed-n.Warning {
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

// pydicomFiles is where Debian's python3-pydicom installs pydicom's test files.
const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// What retrieving a pydicom test file in an uncompressed syntax gives.
const (
	// outEqual: it arrives with pixel data equal, byte for byte, to DCMTK's
	// decompression of the same file (GDCM's for JPEG 2000).
	outEqual = "equal"
	// outLossy: it arrives; lossy JPEG, whose decoders may differ, so its samples are
	// within lossyMeanTolerance of DCMTK's on average.
	outLossy = "lossy"
	// outStoredBits: it arrives with pixel data equal to the reference's in the stored
	// bits (BitsStored at HighBit); the bits above them differ.
	outStoredBits = "equal in the stored bits"
	// outNoPixels: it arrives; the object has no pixel data.
	outNoPixels = "no pixels"
	// outRefused: it is refused with a precise status (406 with the reason; a failed
	// sub-operation with an error comment), never a dropped connection.
	outRefused = "refused"
	// outNotStored: Lumen refuses it at ingest.
	outNotStored = "not stored"
)

// lossyMeanTolerance bounds the mean absolute difference between Lumen's and DCMTK's
// decoding of lossy JPEG samples (8 or 12 bits), as render's pydicom test does:
// decoders may differ in IDCT rounding and in chroma upsampling, which is large at
// colour edges (libjpeg in DCMTK interpolates, Go's decoder replicates).
const lossyMeanTolerance = 3.0

// pydicomExpected is the outcome of each pydicom test file asked for in an uncompressed
// syntax (C-GET and C-MOVE to peers accepting only uncompressed syntaxes, WADO-RS with
// transfer-syntax=1.2.840.10008.1.2.1). Asked for in its stored syntax, a stored file
// always arrives byte-identical.
//
// The two 12-bit JPEG rows (JPEG-lossy.dcm, JPGExtended.dcm) flip from outRefused to
// outLossy once a 12-bit JPEG decoder is in dcm/codec's table.
var pydicomExpected = map[string]string{
	"693_J2KI.dcm":                             outEqual,
	"CT_small.dcm":                             outEqual,
	"ExplVR_BigEnd.dcm":                        outEqual,
	"ExplVR_BigEndNoMeta.dcm":                  outNotStored, // 0xC000: no PS3.10 header
	"ExplVR_LitEndNoMeta.dcm":                  outNotStored, // 0xC000: no PS3.10 header
	"GDCMJ2K_TextGBR.dcm":                      outEqual,
	"J2K_pixelrep_mismatch.dcm":                outStoredBits, // PixelRepresentation 1, an unsigned code stream: Lumen sign-extends the 13-bit values, GDCM does not
	"JPEG-lossy.dcm":                           outLossy,      // 12-bit JPEG extended (dcm/codec/jpegext)
	"JPEG2000-embedded-sequence-delimiter.dcm": outRefused,    // its SIZ marker is overwritten (GDCM cannot decode it either)
	"JPEG2000.dcm":                             outEqual,
	"JPGExtended.dcm":                          outLossy, // 12-bit JPEG extended (dcm/codec/jpegext)
	"MR_small.dcm":                             outEqual,
	"MR_small_RLE.dcm":                         outEqual,
	"MR_small_bigendian.dcm":                   outEqual,
	"MR_small_expb.dcm":                        outEqual,
	"MR_small_implicit.dcm":                    outEqual,
	"MR_small_jp2klossless.dcm":                outEqual,
	"MR_small_jpeg_ls_lossless.dcm":            outEqual,
	"MR_small_padded.dcm":                      outEqual,
	"MR_truncated.dcm":                         outNotStored, // 0xC000: truncated
	"SC_jpeg_no_color_transform.dcm":           outLossy,
	"SC_jpeg_no_color_transform_2.dcm":         outLossy,
	"SC_rgb_dcmtk_+eb+cr.dcm":                  outLossy,
	"SC_rgb_dcmtk_+eb+cy+n1.dcm":               outLossy,
	"SC_rgb_dcmtk_+eb+cy+n2.dcm":               outLossy,
	"SC_rgb_dcmtk_+eb+cy+np.dcm":               outLossy,
	"SC_rgb_dcmtk_+eb+cy+s2.dcm":               outLossy,
	"SC_rgb_dcmtk_+eb+cy+s4.dcm":               outLossy,
	"SC_rgb_gdcm_KY.dcm":                       outEqual,
	"SC_rgb_jpeg.dcm":                          outNotStored, // 0xC000: no meta information, the data set read as explicit VR is garbage
	"SC_rgb_jpeg_app14_dcmd.dcm":               outLossy,
	"SC_rgb_jpeg_dcmd.dcm":                     outEqual,
	"SC_rgb_jpeg_dcmtk.dcm":                    outLossy,
	"SC_rgb_jpeg_gdcm.dcm":                     outEqual,
	"SC_rgb_jpeg_lossy_gdcm.dcm":               outLossy,
	"SC_rgb_rle.dcm":                           outEqual,
	"SC_rgb_rle_16bit.dcm":                     outEqual,
	"SC_rgb_rle_16bit_2frame.dcm":              outEqual,
	"SC_rgb_rle_2frame.dcm":                    outEqual,
	"SC_rgb_rle_32bit.dcm":                     outEqual,
	"SC_rgb_rle_32bit_2frame.dcm":              outEqual,
	"SC_rgb_small_odd.dcm":                     outEqual,
	"SC_rgb_small_odd_jpeg.dcm":                outLossy,
	"SC_ybr_full_422_uncompressed.dcm":         outEqual,
	"UN_sequence.dcm":                          outNotStored, // 0xC000: no SOP Class/Instance UIDs (a data set fragment)
	"badVR.dcm":                                outNotStored, // 0xA900: MediaStorageSOPInstanceUID differs from SOPInstanceUID
	"empty_charset_LEI.dcm":                    outNotStored, // 0xC000: no SOP Class/Instance UIDs (a data set fragment)
	"image_dfl.dcm":                            outEqual,
	"liver_1frame.dcm":                         outEqual,
	"liver_expb_1frame.dcm":                    outEqual,
	"meta_missing_tsyntax.dcm":                 outNotStored, // 0xC000: no TransferSyntaxUID
	"nested_priv_SQ.dcm":                       outNotStored, // 0xC000: no SOP Class/Instance UIDs (a data set fragment)
	"no_meta.dcm":                              outNotStored, // 0xC000: no PS3.10 header
	"no_meta_group_length.dcm":                 outNotStored, // 0xC000: no SOP Class/Instance UIDs (a data set fragment)
	"priv_SQ.dcm":                              outNotStored, // 0xC000: no SOP Class/Instance UIDs (a data set fragment)
	"reportsi.dcm":                             outNoPixels,
	"reportsi_with_empty_number_tags.dcm":      outNoPixels,
	"rtdose.dcm":                               outNotStored, // 0xA900: MediaStorageSOPInstanceUID differs from SOPInstanceUID
	"rtdose_1frame.dcm":                        outNotStored, // 0xA900: MediaStorageSOPInstanceUID differs from SOPInstanceUID
	"rtdose_expb.dcm":                          outNotStored, // 0xA900: MediaStorageSOPInstanceUID differs from SOPInstanceUID
	"rtdose_expb_1frame.dcm":                   outNotStored, // 0xA900: MediaStorageSOPInstanceUID differs from SOPInstanceUID
	"rtdose_rle.dcm":                           outEqual,
	"rtdose_rle_1frame.dcm":                    outEqual,
	"rtplan.dcm":                               outNotStored, // 0xA900: MediaStorageSOPInstanceUID differs from SOPInstanceUID
	"rtplan_truncated.dcm":                     outNotStored, // 0xC000: truncated
	"rtstruct.dcm":                             outNotStored, // 0xC000: no PS3.10 header
	"test-SR.dcm":                              outNoPixels,
	"waveform_ecg.dcm":                         outNoPixels,
}

// getscuPrefer is the getscu option that offers a transfer syntax first (with the
// uncompressed ones after it). Implicit VR Little Endian is among those getscu offers
// by default (its +xi proposes Explicit VR Little Endian only).
var getscuPrefer = map[string]string{
	"1.2.840.10008.1.2.1": "+xe", "1.2.840.10008.1.2.1.99": "+xd", "1.2.840.10008.1.2.2": "+xb",
	"1.2.840.10008.1.2.4.50": "+xy", "1.2.840.10008.1.2.4.51": "+xx", "1.2.840.10008.1.2.4.70": "+xs",
	"1.2.840.10008.1.2.4.80": "+xt", "1.2.840.10008.1.2.4.81": "+xu", "1.2.840.10008.1.2.4.90": "+xv", "1.2.840.10008.1.2.4.91": "+xw",
	"1.2.840.10008.1.2.5": "+xr",
}

// TestPydicomRetrieve stores each pydicom test file into a running Lumen and retrieves
// it through C-GET (getscu offering the stored syntax first, then offering uncompressed
// syntaxes only), C-MOVE (to storescp accepting uncompressed syntaxes, and to one
// accepting Implicit VR Little Endian only) and WADO-RS as Explicit VR Little Endian.
// Each retrieval gives what pydicomExpected says: the stored data set byte for byte
// when it goes in its stored syntax, pixel data equal to DCMTK's decompression when
// converted, or a precise refusal; never a dropped connection.
func TestPydicomRetrieve(t *testing.T) {
	if _, err := os.Stat(pydicomFiles); err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
	}
	files, _ := filepath.Glob(filepath.Join(pydicomFiles, "*.dcm"))
	if len(files) < 60 {
		t.Fatalf("%d pydicom test files", len(files))
	}
	destPort, destDir := storeSCP(t)
	implPort, implDir := storeSCPAt(t, port(t), "+xi")
	s := startLumen(t, func(c *Config) {
		c.DICOMweb.AllowDelete = true
		c.DIMSE.Peers = []PeerConfig{{AETitle: "DEST", Host: "127.0.0.1", Port: destPort}, {AETitle: "IMPLICIT", Host: "127.0.0.1", Port: implPort}}
	})
	base := "http://" + s.addr.HTTP + "/dicom-web"
	host, lport, _ := net.SplitHostPort(s.addr.DIMSE)
	var notStored []string
	for _, path := range files {
		name := filepath.Base(path)
		want, ok := pydicomExpected[name]
		if !ok {
			t.Errorf("%s: not in pydicomExpected", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			code, body, _ := stowOne(t, base, data, "")
			if code != http.StatusOK {
				notStored = append(notStored, name)
				if want != outNotStored {
					t.Fatalf("STOW: %d %s", code, body)
				}
				t.Logf("not stored: %d %.200s", code, body)
				return
			}
			if want == outNotStored {
				t.Fatalf("stored, but pydicomExpected says %s", outNotStored)
			}
			f, err := dcm.Parse(bytes.NewReader(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			ts, study, series, sop := f.TransferSyntax, f.Dataset.String(dcm.TagStudyInstanceUID), f.Dataset.String(dcm.TagSeriesInstanceUID), f.Dataset.String(dcm.TagSOPInstanceUID)
			if (ts == "1.2.840.10008.1.2.4.90" || ts == "1.2.840.10008.1.2.4.91") && !openjpeg.Available {
				want = outRefused // built without OpenJPEG: no JPEG 2000 decoder
			}
			defer func() {
				if code, b := httpDo(t, http.MethodDelete, base+"/studies/"+study, "", nil); code != http.StatusNoContent {
					t.Fatalf("DELETE: %d %s", code, b)
				}
			}()
			stored, _ := storedDataSet(t, data)
			var ref *pixels
			if want == outEqual || want == outLossy || want == outStoredBits {
				ref = reference(t, path, ts)
			}
			// check judges one arrival (a data set in ats, or nothing) against the row.
			check := func(how string, arrived *[2]string, refusal string) {
				t.Helper()
				switch {
				case arrived != nil && arrived[1] == ts:
					if arrived[0] != stored {
						t.Errorf("%s: arrived in the stored syntax but altered", how)
					}
				case arrived != nil && want == outRefused:
					t.Errorf("%s: arrived in %s; want a refusal", how, arrived[1])
				case arrived != nil:
					if arrived[1] != dimse.ExplicitVRLittleEndian && arrived[1] != dimse.ImplicitVRLittleEndian {
						t.Errorf("%s: arrived in %s", how, arrived[1])
						return
					}
					g, err := dcm.ParseDataset(strings.NewReader(arrived[0]), arrived[1], 0, nil)
					if err != nil {
						t.Errorf("%s: the data set sent does not parse: %v", how, err)
						return
					}
					for _, e := range f.Dataset.Elements {
						if g.Dataset.Get(e.Tag) == nil && e.Tag.Element() != 0 { // group lengths are left out
							t.Errorf("%s: %s is missing", how, e.Tag)
						}
					}
					if want == outNoPixels {
						return
					}
					got, err := nativePixels(g, []byte(arrived[0]))
					if err != nil {
						t.Errorf("%s (arrived in %s): %v", how, arrived[1], err)
						return
					}
					if err := got.compare(ref, want); err != nil {
						t.Errorf("%s (arrived in %s): %v", how, arrived[1], err)
					}
				case want != outRefused:
					t.Errorf("%s: nothing arrived: %s", how, refusal)
				case refusal == "":
					t.Errorf("%s: refused without a reason", how)
				default:
					t.Logf("%s: refused: %s", how, refusal)
				}
			}
			// dimseOutcome reads a getscu/movescu run: what arrived in dir, or the refusal.
			dimseOutcome := func(how, out, dir string) {
				t.Helper()
				fin := finalResponse(out)
				got := received(t, dir)
				for _, e := range must(os.ReadDir(dir)) {
					os.Remove(filepath.Join(dir, e.Name()))
				}
				switch {
				case fin.status == "":
					t.Errorf("%s: no final response (connection dropped?):\n%s", how, out)
				case fin.status == "0x0000" && fin.completed == 1 && len(got) == 1:
					a := got[sop]
					check(how, &a, "")
				case fin.status != "0x0000" && fin.failed == 1 && len(got) == 0:
					comment := ""
					if i := strings.LastIndex(out, "(0000,0902)"); i >= 0 {
						comment, _, _ = strings.Cut(out[i:], "\n")
					}
					check(how, nil, fin.status+" "+comment)
				default:
					t.Errorf("%s: status %s, %d completed, %d failed, %d files:\n%s", how, fin.status, fin.completed, fin.failed, len(got), out)
				}
			}
			keys := []string{"QueryRetrieveLevel=IMAGE", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series, "SOPInstanceUID=" + sop}
			for _, c := range []struct{ how, opt string }{{"C-GET offering " + ts, getscuPrefer[ts]}, {"C-GET offering uncompressed", ""}} {
				if c.opt == "" && c.how != "C-GET offering uncompressed" {
					continue // getscu offers it among the uncompressed syntaxes
				}
				dir := t.TempDir()
				// getscu 3.6.7 does not read the Failed SOP Instance UID List of a final
				// C-GET-RSP (PS3.4 C.4.3.1.3.1); its A-RELEASE then meets that P-DATA and
				// it waits out its ACSE timeout (-ta, 30 s by default) before aborting.
				args := []string{"-d", "-ta", "5", "-S", "-aet", "GETTER", "-aec", "LUMEN", "-od", dir, "+B"}
				if c.opt != "" {
					args = append(args, c.opt)
				}
				for _, k := range keys {
					args = append(args, "-k", k)
				}
				out, _ := exec.Command(dcmtkTool(t, "getscu"), append(args, host, lport)...).CombinedOutput()
				if c.opt != "" && ts != "1.2.840.10008.1.2.1.99" && ts != "1.2.840.10008.1.2.2" && ts != "1.2.840.10008.1.2.1" {
					// Offered first, a compressed syntax is accepted: the object goes as
					// stored, decodable or not.
					if got := received(t, dir); len(got) != 1 || got[sop][1] != ts || got[sop][0] != stored {
						t.Errorf("%s: not received as stored (%d files; %s, %d bytes, stored %d bytes):\n%s", c.how, len(got), got[sop][1], len(got[sop][0]), len(stored), out)
					}
					continue
				}
				dimseOutcome(c.how, string(out), dir)
			}
			for _, d := range []struct{ ae, dir string }{{"DEST", destDir}, {"IMPLICIT", implDir}} {
				dimseOutcome("C-MOVE to "+d.ae, moveWith(t, "-S", d.ae, host, lport, keys), d.dir)
			}
			resp := wadoGet(t, base+"/studies/"+study+"/series/"+series+"/instances/"+sop, `multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1`)
			switch {
			case resp.code == http.StatusOK && len(resp.parts) == 1:
				a := [2]string{"", ""}
				a[0], a[1] = storedDataSet(t, resp.parts[0])
				check("WADO-RS", &a, "")
			case resp.code == http.StatusNotAcceptable && resp.err == nil:
				check("WADO-RS", nil, "406 "+string(resp.body))
			default:
				t.Errorf("WADO-RS: %d, %d parts, %v: %.300s", resp.code, len(resp.parts), resp.err, resp.body)
			}
		})
	}
	t.Logf("not stored (refused at ingest): %v", notStored)
}

// port returns a free loopback port.
func port(t *testing.T) int {
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// stowOne stores one object with STOW-RS at base (the DICOMweb root), with a bearer
// token unless it is "", and returns the status, the body and the Warning headers.
func stowOne(t *testing.T, base string, data []byte, token string) (code int, body, warning string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/dicom"}})
	w.Write(data)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/studies", &buf)
	req.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	req.Header.Set("Accept", "application/dicom+json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), strings.Join(resp.Header.Values("Warning"), "|")
}

// wadoResponse is a WADO-RS answer: its status, its parts (multipart) or body, and
// the error reading it (a transfer broken off).
type wadoResponse struct {
	code   int
	header http.Header
	parts  [][]byte
	body   []byte
	err    error
}

// wadoGet sends a WADO-RS request and reads the whole answer.
func wadoGet(t *testing.T, url, accept string) wadoResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return wadoResponse{err: err}
	}
	defer resp.Body.Close()
	r := wadoResponse{code: resp.StatusCode, header: resp.Header}
	mt, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusOK || mt != "multipart/related" {
		r.body, r.err = io.ReadAll(resp.Body)
		return r
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return r
		}
		if err != nil {
			r.err = err
			return r
		}
		b, err := io.ReadAll(p)
		if err != nil {
			r.err = err
			return r
		}
		r.parts = append(r.parts, b)
	}
}

// pixels is native pixel data, colour-by-pixel, with what says how to read it.
type pixels struct {
	data                            []byte
	photometric                     string
	rows, cols, samples, bits, nfrm int
	stored, high                    int // BitsStored, HighBit
}

// nativePixels reads the native pixel data of a parsed data set (data holds the bytes
// its offsets refer to), planar colour data interleaved.
func nativePixels(f *dcm.File, data []byte) (*pixels, error) {
	pl := f.PixelLayout()
	if pl == nil || pl.Encapsulated {
		return nil, fmt.Errorf("no native pixel data")
	}
	ds := f.Dataset
	geti := func(tag dcm.Tag, def int) int {
		if v, ok := ds.Int(tag); ok {
			return int(v)
		}
		return def
	}
	p := &pixels{photometric: ds.String(dcm.TagPhotometricInterpretation), rows: geti(dcm.TagRows, 0), cols: geti(dcm.TagColumns, 0),
		samples: geti(dcm.TagSamplesPerPixel, 1), bits: geti(dcm.TagBitsAllocated, 0), nfrm: pl.NumberOfFrames}
	p.stored = geti(dcm.TagBitsStored, p.bits)
	p.high = geti(dcm.TagHighBit, p.stored-1)
	n := pl.Length
	if pl.FrameLength > 0 {
		n = pl.FrameLength * int64(pl.NumberOfFrames)
	} else if p.bits == 1 {
		n = (int64(p.rows*p.cols*p.samples*pl.NumberOfFrames) + 7) / 8
	}
	if pl.Offset+n > int64(len(data)) {
		return nil, fmt.Errorf("pixel data runs past the data set")
	}
	p.data = data[pl.Offset : pl.Offset+n]
	if v, _ := ds.Int(dcm.TagPlanarConfiguration); v == 1 && p.samples == 3 && pl.FrameLength > 0 {
		fl := int(pl.FrameLength)
		px, bps := p.rows*p.cols, p.bits/8
		out := make([]byte, len(p.data))
		for fr := 0; fr < p.nfrm; fr++ {
			in, o := p.data[fr*fl:], out[fr*fl:]
			for i := 0; i < px; i++ {
				for s := 0; s < 3; s++ {
					copy(o[(3*i+s)*bps:(3*i+s+1)*bps], in[(s*px+i)*bps:(s*px+i+1)*bps])
				}
			}
		}
		p.data = out
	}
	return p, nil
}

// compare checks p against the reference as the outcome want says: same geometry and
// colour model, and the same bytes (outEqual), the same stored bits of each 16-bit
// sample (outStoredBits), or samples within lossyMeanTolerance on average (outLossy).
func (p *pixels) compare(ref *pixels, want string) error {
	if p.rows != ref.rows || p.cols != ref.cols || p.samples != ref.samples || p.bits != ref.bits || p.nfrm != ref.nfrm {
		return fmt.Errorf("%dx%dx%d %d-bit %d frames, reference %dx%dx%d %d-bit %d frames", p.cols, p.rows, p.samples, p.bits, p.nfrm, ref.cols, ref.rows, ref.samples, ref.bits, ref.nfrm)
	}
	if p.photometric != ref.photometric {
		return fmt.Errorf("PhotometricInterpretation %s, reference %s", p.photometric, ref.photometric)
	}
	if len(p.data) != len(ref.data) {
		return fmt.Errorf("%d pixel bytes, reference %d", len(p.data), len(ref.data))
	}
	if want == outStoredBits && p.bits == 16 && p.stored == ref.stored && p.high == ref.high {
		mask := uint16(1<<p.stored-1) << (p.high + 1 - p.stored)
		for i := 0; i+1 < len(p.data); i += 2 {
			a, b := binary.LittleEndian.Uint16(p.data[i:])&mask, binary.LittleEndian.Uint16(ref.data[i:])&mask
			if a != b {
				return fmt.Errorf("sample %d is %#04x in the stored bits, reference %#04x", i/2, a, b)
			}
		}
		if firstDiff(p.data, ref.data) < 0 {
			return fmt.Errorf("equal to the reference byte for byte: the row is %s", outEqual)
		}
		return nil
	}
	if want != outLossy || p.bits != 8 && p.bits != 16 {
		if i := firstDiff(p.data, ref.data); i >= 0 {
			return fmt.Errorf("pixel byte %d is %#02x, reference %#02x", i, p.data[i], ref.data[i])
		}
		return nil
	}
	var sum, worst, n int
	for i := 0; i < len(p.data); i += p.bits / 8 {
		a, b := int(p.data[i]), int(ref.data[i])
		if p.bits == 16 { // 12-bit JPEG: samples in 16 bits
			a, b = int(binary.LittleEndian.Uint16(p.data[i:])), int(binary.LittleEndian.Uint16(ref.data[i:]))
		}
		d := a - b
		sum += max(d, -d)
		worst = max(worst, d, -d)
		n++
	}
	if mean := float64(sum) / float64(n); mean > lossyMeanTolerance {
		return fmt.Errorf("samples differ from the reference by %.2f on average (at most %d)", mean, worst)
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// reference decompresses a file with DCMTK (GDCM for JPEG 2000, dcmconv +te for
// uncompressed syntaxes) and returns its pixel data.
func reference(t *testing.T, path, ts string) *pixels {
	t.Helper()
	out := filepath.Join(t.TempDir(), "ref.dcm")
	var cmd *exec.Cmd
	switch ts {
	case "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70":
		cmd = exec.Command(dcmtkTool(t, "dcmdjpeg"), path, out)
	case "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81":
		cmd = exec.Command(dcmtkTool(t, "dcmdjpls"), path, out)
	case "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91":
		cmd = exec.Command(tools.Require(t, "gdcmconv", "GDCM's libgdcm-tools"), "--raw", path, out)
	case "1.2.840.10008.1.2.5":
		cmd = exec.Command(dcmtkTool(t, "dcmdrle"), path, out)
	default:
		cmd = exec.Command(dcmtkTool(t, "dcmconv"), "+te", path, out)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("reference %v: %v\n%s", cmd.Args, err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := dcm.Parse(bytes.NewReader(data), nil)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	p, err := nativePixels(f, data)
	if err != nil {
		t.Fatalf("reference: %v", err)
	}
	return p
}

// TestRetrieveCorruptFrame retrieves, as uncompressed, a series of two RLE objects whose
// second has a second frame that does not decode: through C-GET and C-MOVE that
// sub-operation fails with a comment naming the frame, before any of it is sent, the
// good object arrives and the association carries on (a final response with the
// counts); never a connection closed halfway through a data set.
func TestRetrieveCorruptFrame(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(pydicomFiles, "SC_rgb_rle_2frame.dcm"))
	if err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
	}
	f, err := dcm.Parse(bytes.NewReader(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	study, series, sop := f.Dataset.String(dcm.TagStudyInstanceUID), f.Dataset.String(dcm.TagSeriesInstanceUID), f.Dataset.String(dcm.TagSOPInstanceUID)
	p := filepath.Join(t.TempDir(), "bad.dcm")
	os.WriteFile(p, src, 0o644)
	other := sop[:len(sop)-1] + string(rune('0'+(sop[len(sop)-1]-'0'+1)%10)) // a UID of the same length
	runDCMTK(t, "dcmodify", "-nb", "-m", "(0008,0018)="+other, p)
	bad, _ := os.ReadFile(p)
	g, err := dcm.Parse(bytes.NewReader(bad), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := g.PixelLayout().Frame(1)
	copy(bad[r[0].Offset:], []byte{0xFF, 0, 0, 0}) // 255 RLE segments

	destPort, destDir := storeSCP(t)
	s := startLumen(t, func(c *Config) {
		c.DIMSE.Peers = []PeerConfig{{AETitle: "DEST", Host: "127.0.0.1", Port: destPort}}
	})
	base := "http://" + s.addr.HTTP + "/dicom-web"
	for _, o := range [][]byte{src, bad} {
		if code, body, _ := stowOne(t, base, o, ""); code != http.StatusOK {
			t.Fatalf("STOW: %d %s", code, body)
		}
	}
	host, lport, _ := net.SplitHostPort(s.addr.DIMSE)
	keys := []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + study, "SeriesInstanceUID=" + series}
	getDir := t.TempDir()
	args := []string{"-d", "-ta", "5", "-S", "-aet", "GETTER", "-aec", "LUMEN", "-od", getDir, "+B"}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	out, _ := exec.Command(dcmtkTool(t, "getscu"), append(args, host, lport)...).CombinedOutput()
	for _, c := range []struct{ how, out, dir string }{
		{"C-GET", string(out), getDir},
		{"C-MOVE", moveWith(t, "-S", "DEST", host, lport, keys), destDir},
	} {
		fin := finalResponse(c.out)
		got := received(t, c.dir)
		_, good := got[sop]
		if fin.status != "0xb000" || fin.completed != 1 || fin.failed != 1 || len(got) != 1 || !good || !strings.Contains(c.out, "frame 2: cannot decode") {
			t.Errorf("%s: status %q, %d completed, %d failed, %d files (the good one: %v):\n%s", c.how, fin.status, fin.completed, fin.failed, len(got), good, c.out)
		}
	}
}
