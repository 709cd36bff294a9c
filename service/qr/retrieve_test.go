package qr_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/dimse/dimsetest"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/transcode"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// uids are the SOP Instance UIDs of objs, sorted.
func uids(objs []gen.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.SOPInstanceUID)
	}
	slices.Sort(out)
	return out
}

// checkArrived checks that exactly want arrived, each byte for byte the data set
// Lumen stores, in the stored transfer syntax, under its SOP class.
func (e *env) checkArrived(t *testing.T, got map[string]dimsetest.Received, want []gen.Object, originator string) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, uids(want)) {
		t.Fatalf("arrived %v, want %v", keys, uids(want))
	}
	for _, o := range want {
		a, s := got[o.SOPInstanceUID], e.stored[o.SOPInstanceUID]
		if string(a.Data) != s[0] || a.TransferSyntaxUID != s[1] || a.SOPClassUID != o.SOPClassUID || a.MoveOriginatorAETitle != originator {
			t.Errorf("%s arrived as %s in %s from %q (%d bytes, identical: %v), want %s in %s from %q (%d bytes)",
				o.SOPInstanceUID, a.SOPClassUID, a.TransferSyntaxUID, a.MoveOriginatorAETitle, len(a.Data), string(a.Data) == s[0], o.SOPClassUID, s[1], originator, len(s[0]))
		}
	}
}

// TestMove performs C-MOVE to a known peer at each level of both information models:
// Success with the sub-operation counts, and the objects arrive at the destination
// byte for byte as stored, with the move originator set.
func TestMove(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			c := e.dial(t)
			study1, mr, p2 := studyObjects(e.objs, 1), studyObjects(e.objs, 2), append(studyObjects(e.objs, 3), studyObjects(e.objs, 4)...)
			t2 := filter(mr, func(o gen.Object) bool { return o.SeriesNumber == 4 })
			one := study1[7]
			for _, tc := range []struct {
				name  string
				model string
				id    []byte
				want  []gen.Object
			}{
				{"study, study root", dimse.StudyRootMove, ident(t, "STUDY", str(dcm.TagStudyInstanceUID, "UI", study1[0].StudyUID)), study1},
				{"series, patient root", dimse.PatientRootMove, ident(t, "SERIES", str(dcm.TagPatientID, "LO", "LUMEN-P0001"),
					str(dcm.TagStudyInstanceUID, "UI", mr[0].StudyUID), str(dcm.TagSeriesInstanceUID, "UI", t2[0].SeriesUID)), t2},
				{"image, study root", dimse.StudyRootMove, ident(t, "IMAGE", str(dcm.TagStudyInstanceUID, "UI", one.StudyUID),
					str(dcm.TagSeriesInstanceUID, "UI", one.SeriesUID), str(dcm.TagSOPInstanceUID, "UI", one.SOPInstanceUID)), []gen.Object{one}},
				{"patient, patient root", dimse.PatientRootMove, ident(t, "PATIENT", str(dcm.TagPatientID, "LO", "LUMEN-P0002")), p2},
				{"two studies by UID list", dimse.StudyRootMove, ident(t, "STUDY", str(dcm.TagStudyInstanceUID, "UI", p2[0].StudyUID, p2[len(p2)-1].StudyUID)), p2},
				{"nothing matches", dimse.StudyRootMove, ident(t, "STUDY", str(dcm.TagStudyInstanceUID, "UI", "1.2.3.4.5")), nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					var pendings []dimse.SubOperations
					st, n, err := c.Move(context.Background(), tc.model, "DEST", tc.id, func(p dimse.SubOperations) bool { pendings = append(pendings, p); return true })
					if err != nil {
						t.Fatal(err)
					}
					if st.Code != dimse.StatusSuccess || st.ErrorComment != "" || n != (dimse.SubOperations{Completed: len(tc.want)}) {
						t.Fatalf("0x%04X %q %+v, want Success with %d completed", st.Code, st.ErrorComment, n, len(tc.want))
					}
					// Each pending response accounts for every sub-operation, and none is
					// counted twice.
					for i, p := range pendings {
						if p.Completed+p.Remaining != len(tc.want) || p.Failed+p.Warning != 0 || i > 0 && p.Completed < pendings[i-1].Completed {
							t.Errorf("pending responses %+v for %d sub-operations", pendings, len(tc.want))
							break
						}
					}
					e.checkArrived(t, e.dest.Take(), tc.want, "WS")
				})
			}
			if list := e.audits(t, "retrieve"); len(list) != 6 || list[5].Detail != "C-MOVE to DEST" || list[5].Outcome != "ok" || list[5].StudyInstanceUID != study1[0].StudyUID {
				t.Errorf("audit records of the C-MOVEs: %+v", list)
			}
		})
	}
}

// TestMoveRefusals: an unknown destination (or one without a port) is A801, a
// retrieve without the unique key of its level is A900, an identifier that does not
// parse is C000, and a destination that is down fails every sub-operation (A702)
// with a reason that does not tell where the peer lives. Nothing is sent.
func TestMoveRefusals(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			c := e.dial(t)
			mr := studyObjects(e.objs, 2)
			study := str(dcm.TagStudyInstanceUID, "UI", mr[0].StudyUID)
			for _, tc := range []struct {
				name    string
				model   string
				dest    string
				id      []byte
				code    uint16
				comment string
				n       dimse.SubOperations
			}{
				{"unknown destination", dimse.StudyRootMove, "NOWHERE", ident(t, "STUDY", study),
					dimse.StatusMoveDestinationUnknown, "move destination NOWHERE unknown: not in dimse.peers", dimse.SubOperations{}},
				{"destination without a port", dimse.StudyRootMove, "NOPORT", ident(t, "STUDY", study),
					dimse.StatusMoveDestinationUnknown, "move destination NOPORT unknown: not in dimse.peers", dimse.SubOperations{}},
				{"study without StudyInstanceUID", dimse.StudyRootMove, "DEST", ident(t, "STUDY", str(dcm.TagPatientID, "LO", "LUMEN-P0001")),
					dimse.StatusDataSetMismatch, "a STUDY retrieve needs StudyInstanceUID", dimse.SubOperations{}},
				{"series without SeriesInstanceUID", dimse.StudyRootMove, "DEST", ident(t, "SERIES", study),
					dimse.StatusDataSetMismatch, "a SERIES retrieve needs SeriesInstanceUID", dimse.SubOperations{}},
				{"image with a wildcard SOPInstanceUID", dimse.StudyRootMove, "DEST", ident(t, "IMAGE", study, str(dcm.TagSOPInstanceUID, "UI", "1.2*")),
					dimse.StatusDataSetMismatch, "a IMAGE retrieve needs SOPInstanceUID", dimse.SubOperations{}},
				{"patient without PatientID", dimse.PatientRootMove, "DEST", ident(t, "PATIENT", str(dcm.TagPatientName, "PN", "Synthetic^Anna")),
					dimse.StatusDataSetMismatch, "a PATIENT retrieve needs PatientID", dimse.SubOperations{}},
				{"study root has no patient level", dimse.StudyRootMove, "DEST", ident(t, "PATIENT", str(dcm.TagPatientID, "LO", "LUMEN-P0001")),
					dimse.StatusDataSetMismatch, "Study Root has no PATIENT level", dimse.SubOperations{}},
				{"no level", dimse.StudyRootMove, "DEST", ident(t, "", study),
					dimse.StatusDataSetMismatch, "QueryRetrieveLevel missing or not PATIENT/STUDY/SERIES/IMAGE", dimse.SubOperations{}},
				{"unparsable identifier", dimse.StudyRootMove, "DEST", []byte{0x08, 0x00, 0x52, 0x00, 'C', 'S', 0x40, 0x00, 'S', 'T'},
					dimse.StatusCannotUnderstand, "identifier does not parse", dimse.SubOperations{}},
				{"destination down", dimse.StudyRootMove, "DOWN", ident(t, "STUDY", study),
					dimse.StatusOutOfResourcesSubops, "cannot connect to the move destination: connection refused", dimse.SubOperations{Failed: len(mr)}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					st, n, err := c.Move(context.Background(), tc.model, tc.dest, tc.id, func(dimse.SubOperations) bool { return true })
					if err != nil {
						t.Fatal(err)
					}
					if st.Code != tc.code || st.ErrorComment != tc.comment || n != tc.n {
						t.Errorf("0x%04X %q %+v, want 0x%04X %q %+v", st.Code, st.ErrorComment, n, tc.code, tc.comment, tc.n)
					}
					if got := e.dest.Take(); len(got) != 0 {
						t.Errorf("%d objects sent", len(got))
					}
				})
			}
			var outcomes []string
			for _, r := range e.audits(t, "retrieve") {
				outcomes = append(outcomes, r.Outcome)
			}
			if want := "0xA702 0xC000 0xA900 0xA900 0xA900 0xA900 0xA900 0xA900 0xA801 0xA801"; strings.Join(outcomes, " ") != want {
				t.Errorf("audited outcomes %v, want %s", outcomes, want)
			}
		})
	}
}

// getscu runs DCMTK's getscu (a real C-GET requestor: it proposes the storage SOP
// classes with the SCP role) against addr and returns its output and what it wrote.
func getscu(t *testing.T, addr, model string, keys ...string) (string, map[string][2]string) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	dir := t.TempDir()
	args := []string{"-d", model, "-aet", "WS", "-aec", "LUMEN", "-od", dir, "+B"}
	for _, k := range keys {
		args = append(args, "-k", k)
	}
	cmd := exec.Command(tools.DCMTK(t, "getscu"), append(args, host, port)...)
	cmd.Env = append(os.Environ(), "TCP_NODELAY=1")
	out, _ := cmd.CombinedOutput()
	files := map[string][2]string{}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		r := bytes.NewReader(b)
		ts, err := transcode.SkipMeta(r)
		if err != nil {
			t.Fatalf("%s: %v", en.Name(), err)
		}
		f, err := dcm.Parse(bytes.NewReader(b), nil)
		if err != nil {
			t.Fatalf("%s: %v", en.Name(), err)
		}
		files[f.Dataset.String(dcm.TagSOPInstanceUID)] = [2]string{string(b[len(b)-r.Len():]), ts}
	}
	return string(out), files
}

// getFinal is the final C-GET response getscu printed (-d): status and counts.
type getFinal struct {
	status                       string
	completed, failed, remaining int
}

func parseGetFinal(out string) getFinal {
	var f getFinal
	// The last response printed is the final one; pending ones come before it.
	i := strings.LastIndex(out, "Received C-GET Response")
	if i < 0 {
		return f
	}
	for _, l := range strings.Split(out[i:], "\n") {
		l = strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(l), "D: "), "I: ")
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimPrefix(strings.TrimSpace(k), "Number of "), strings.TrimSpace(v)
		switch k {
		case "DIMSE Status":
			if f.status == "" {
				f.status, _, _ = strings.Cut(v, ":")
			}
		case "Completed Suboperations":
			f.completed, _ = strconv.Atoi(v)
		case "Failed Suboperations":
			f.failed, _ = strconv.Atoi(v)
		case "Remaining Suboperations":
			f.remaining, _ = strconv.Atoi(v)
		}
	}
	return f
}

// TestGet retrieves with C-GET (DCMTK's getscu, as the Go client has no C-GET): the
// sub-operations come on the requestor's association, byte for byte as stored; a
// retrieve without its unique key is refused with A900.
func TestGet(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be)
			mr := studyObjects(e.objs, 2)
			t1 := filter(mr, func(o gen.Object) bool { return o.SeriesNumber == 3 })
			ct := filter(studyObjects(e.objs, 1), func(o gen.Object) bool { return o.Modality == "CT" })
			for _, tc := range []struct {
				name   string
				model  string
				keys   []string
				want   []gen.Object
				status string
			}{
				{"series, study root", "-S", []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + t1[0].StudyUID, "SeriesInstanceUID=" + t1[0].SeriesUID}, t1, "0x0000"},
				{"image, patient root", "-P", []string{"QueryRetrieveLevel=IMAGE", "PatientID=LUMEN-P0001", "StudyInstanceUID=" + ct[3].StudyUID,
					"SeriesInstanceUID=" + ct[3].SeriesUID, "SOPInstanceUID=" + ct[3].SOPInstanceUID}, ct[3:4], "0x0000"},
				{"series without SeriesInstanceUID", "-S", []string{"QueryRetrieveLevel=SERIES", "StudyInstanceUID=" + t1[0].StudyUID}, nil, "0xa900"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					out, files := getscu(t, e.addr, tc.model, tc.keys...)
					f := parseGetFinal(out)
					if strings.ToLower(f.status) != tc.status || f.completed != len(tc.want) || f.failed != 0 || f.remaining != 0 {
						t.Fatalf("final response %+v, want %s with %d completed\n%s", f, tc.status, len(tc.want), out)
					}
					if len(files) != len(tc.want) {
						t.Fatalf("%d objects received, want %d\n%s", len(files), len(tc.want), out)
					}
					for _, o := range tc.want {
						if got, s := files[o.SOPInstanceUID], e.stored[o.SOPInstanceUID]; got != s {
							t.Errorf("%s arrived in %s, %d bytes; stored in %s, %d bytes (identical: %v)", o.SOPInstanceUID, got[1], len(got[0]), s[1], len(s[0]), got[0] == s[0])
						}
					}
				})
			}
			if list := e.audits(t, "retrieve"); len(list) != 3 || list[0].Outcome != "0xA900" || list[2].Detail != "C-GET" || list[2].Outcome != "ok" || list[2].StudyInstanceUID != t1[0].StudyUID {
				t.Errorf("audit records of the C-GETs: %+v", list)
			}
		})
	}
}
