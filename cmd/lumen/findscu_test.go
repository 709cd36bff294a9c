package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
)

// instanceFile encodes an index record as a minimal PS3.10 file.
func instanceFile(t *testing.T, in *index.Instance) []byte {
	b, err := indextest.File(in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var levelNames = map[index.Level]string{index.PatientLevel: "PATIENT", index.StudyLevel: "STUDY", index.SeriesLevel: "SERIES", index.ImageLevel: "IMAGE"}

// findKey turns a matching-table key (keyword or 8 hex digits) into findscu's syntax.
func findKey(k string) string {
	if len(k) == 8 && strings.ToUpper(k) == k {
		if _, err := dcm.ParseTag(k); err == nil && strings.Trim(k, "0123456789ABCDEF") == "" {
			return k[:4] + "," + k[4:]
		}
	}
	return k
}

// TestFindSCUMatching runs the index's matching table through DCMTK findscu against a
// running Lumen, for both information models, and expects the same results in the same
// order.
func TestFindSCUMatching(t *testing.T) {
	findscu := dcmtkTool(t, "findscu")
	src := t.TempDir()
	for _, in := range indextest.Fixture() {
		if err := os.WriteFile(filepath.Join(src, in.SOPInstanceUID+".dcm"), instanceFile(t, in), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := startLumen(t, nil)
	if out, _, code := runCLI(t, "import", src, "--data-dir", s.c.DataDir, "--progress", "none"); code != 0 {
		t.Fatalf("import: %s", out)
	}
	h, p := splitAddr(s.addr.DIMSE)
	for _, c := range indextest.MatchingCases {
		if c.Fuzzy {
			continue // C-FIND has no fuzzy flag without extended negotiation
		}
		for _, model := range []string{"-P", "-S"} {
			if model == "-S" && c.Level == index.PatientLevel {
				continue
			}
			t.Run(c.Name+model, func(t *testing.T) {
				out := t.TempDir()
				args := []string{model, "-aec", "LUMEN", "-X", "-od", out, "-k", "QueryRetrieveLevel=" + levelNames[c.Level], "-k", "SpecificCharacterSet=ISO_IR 192"}
				has := map[string]bool{}
				for k, v := range c.Filters {
					args = append(args, "-k", findKey(k)+"="+v)
					has[k] = true
				}
				ret := map[index.Level][]string{index.PatientLevel: {"PatientID", "IssuerOfPatientID"}, index.StudyLevel: {"StudyInstanceUID"}, index.SeriesLevel: {"SeriesInstanceUID"}, index.ImageLevel: {"SOPInstanceUID"}}[c.Level]
				for _, k := range ret {
					if !has[k] && !(k == "StudyInstanceUID" && has["0020000D"]) {
						args = append(args, "-k", k)
					}
				}
				cmd := exec.Command(findscu, append(args, h, p)...)
				cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
				if b, err := cmd.CombinedOutput(); err != nil || bytes.Contains(b, []byte("E: ")) {
					t.Fatalf("findscu %v: %v\n%s", args, err, b)
				}
				files, _ := filepath.Glob(filepath.Join(out, "rsp*.dcm"))
				slices.Sort(files)
				var got []string
				for _, f := range files {
					b, _ := os.ReadFile(f)
					fl, err := dcm.Parse(bytes.NewReader(b), nil)
					if err != nil {
						t.Fatal(err)
					}
					d := fl.Dataset
					switch c.Level {
					case index.PatientLevel:
						got = append(got, d.String(dcm.TagPatientID)+"|"+d.String(dcm.TagIssuerOfPatientID))
					case index.StudyLevel:
						got = append(got, d.String(dcm.TagStudyInstanceUID))
					case index.SeriesLevel:
						got = append(got, d.String(dcm.TagSeriesInstanceUID))
					case index.ImageLevel:
						got = append(got, d.String(dcm.TagSOPInstanceUID))
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(c.Want) {
					t.Fatalf("findscu %v\ngot  %v\nwant %v", args, got, c.Want)
				}
			})
		}
	}
	_ = context.Background
}

// TestFindCancelAndCharset: Lumen's SCU finds against Lumen, cancels mid-stream
// (C-CANCEL honoured), and a query in ISO_IR 100 gets Latin-1 answers.
func TestFindCancelAndCharset(t *testing.T) {
	src := t.TempDir()
	objs := writeCorpus(t, src)
	s := startLumen(t, nil)
	if out, _, code := runCLI(t, "import", src, "--data-dir", s.c.DataDir, "--progress", "none"); code != 0 {
		t.Fatalf("import: %s", out)
	}
	c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CalledAETitle: "LUMEN", Contexts: []dimse.ProposedContext{{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	q := &dcm.Dataset{}
	q.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "IMAGE"))
	q.Set(dcm.NewString(dcm.TagSOPInstanceUID, "UI"))
	b, _ := q.Encode(dcm.ExplicitVRLittleEndian)
	all := 0
	st, err := c.Find(context.Background(), dimse.StudyRootFind, b, func([]byte) bool { all++; return true })
	if err != nil || st.Code != dimse.StatusSuccess || all != len(objs)+6 {
		t.Fatalf("find all: %+v %v, %d matches (want %d)", st, err, all, len(objs)+6)
	}
	n := 0
	st, err = c.Find(context.Background(), dimse.StudyRootFind, b, func([]byte) bool { n++; return n < 3 })
	// 45 small matches fit in the socket buffers, so the server may finish before the
	// C-CANCEL arrives (then Success is the right answer); dimse.TestFindCancel shows the
	// cancel honoured mid-stream.
	if err != nil || (st.Code != dimse.StatusCancel && st.Code != dimse.StatusSuccess) {
		t.Fatalf("cancelled find: %+v %v after %d of %d matches", st, err, n, all)
	}
	// The association is still usable after the cancel.
	q2 := &dcm.Dataset{}
	q2.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", "ISO_IR 100"))
	q2.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "STUDY"))
	q2.Set(dcm.NewElement(dcm.TagPatientName, "PN", []byte("M\xfcller*")))
	q2.Set(dcm.NewString(dcm.TagStudyInstanceUID, "UI"))
	b2, _ := q2.Encode(dcm.ExplicitVRLittleEndian)
	var names []string
	st, err = c.Find(context.Background(), dimse.StudyRootFind, b2, func(id []byte) bool {
		f, err := dcm.ParseDataset(bytes.NewReader(id), dcm.ExplicitVRLittleEndian, 0, nil)
		if err != nil {
			t.Error(err)
			return false
		}
		if cs := f.Dataset.String(dcm.TagSpecificCharacterSet); cs != "ISO_IR 100" {
			t.Errorf("answer character set %q, want ISO_IR 100", cs)
		}
		names = append(names, f.Dataset.Text(dcm.TagPatientName))
		return true
	})
	if err != nil || st.Code != dimse.StatusSuccess || len(names) != 2 || names[0] != "Müller^Jürgen" {
		t.Fatalf("Latin-1 query: %+v %v %q", st, err, names)
	}
}

// TestFindTooManyTerms: a C-FIND or C-MOVE identifier the index cannot run as given (a
// list of 1,000 UIDs) is the requestor's fault: 0xC000 with the reason, never 0xA700
// "out of resources", which a workstation would retry.
func TestFindTooManyTerms(t *testing.T) {
	s := startLumen(t, func(c *Config) { c.DIMSE.Peers = []PeerConfig{{AETitle: "WS", Host: "127.0.0.1", Port: 9}} })
	uids := make([]string, 1000)
	for i := range uids {
		uids[i] = fmt.Sprintf("1.2.3.%d", i+1)
	}
	ds := &dcm.Dataset{}
	ds.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", "STUDY"))
	ds.Set(dcm.NewString(dcm.TagStudyInstanceUID, "UI", uids...))
	ident, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dimse.Dial(context.Background(), s.addr.DIMSE, dimse.DialConfig{CallingAETitle: "WS", CalledAETitle: "LUMEN", Contexts: []dimse.ProposedContext{
		{AbstractSyntax: dimse.StudyRootFind, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}},
		{AbstractSyntax: dimse.StudyRootMove, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	st, err := c.Find(context.Background(), dimse.StudyRootFind, ident, func([]byte) bool { return true })
	if err != nil || st.Code != dimse.StatusCannotUnderstand || !strings.Contains(st.ErrorComment, "terms") {
		t.Errorf("C-FIND with 1,000 UIDs: %v 0x%04X %q, want 0xC000 with the reason", err, st.Code, st.ErrorComment)
	}
	st, _, err = c.Move(context.Background(), dimse.StudyRootMove, "WS", ident, func(dimse.SubOperations) bool { return true })
	if err != nil || st.Code != dimse.StatusCannotUnderstand || !strings.Contains(st.ErrorComment, "terms") {
		t.Errorf("C-MOVE with 1,000 UIDs: %v 0x%04X %q, want 0xC000 with the reason", err, st.Code, st.ErrorComment)
	}
}
