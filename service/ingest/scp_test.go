package ingest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/dimse/dimsetest"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestStoreStatus maps every kind of ingest error to its C-STORE status (PS3.4 Table
// B.2-1): the reason goes into the comment, except for duplicates (a fixed comment)
// and failures of the archive itself (never the cause: "retry later").
func TestStoreStatus(t *testing.T) {
	ie := func(kind error, reason string) error { return &ingest.Error{Kind: kind, Reason: reason} }
	for _, tc := range []struct {
		name    string
		err     error
		code    uint16
		comment string
	}{
		{"stored", nil, dimse.StatusSuccess, ""},
		{"mismatch", ie(ingest.ErrMismatch, "SOPInstanceUID in the data set differs"), dimse.StatusDataSetMismatch, "SOPInstanceUID in the data set differs"},
		{"duplicate", ie(ingest.ErrDuplicate, "stored with sha256 abc"), dimse.StatusDuplicateSOPInstance, "SOP Instance UID stored with other content"},
		{"not authorized", ie(ingest.ErrNotAuthorized, "refused: not authorized for this object"), dimse.StatusNotAuthorized, "refused: not authorized for this object"},
		{"invalid", ie(ingest.ErrInvalid, "no SOPInstanceUID"), dimse.StatusCannotUnderstand, "no SOPInstanceUID"},
		{"conflict", ie(ingest.ErrConflict, "series under another study"), dimse.StatusCannotUnderstand, "series under another study"},
		{"unavailable, cause kept out of the comment", &ingest.Error{Kind: ingest.ErrUnavailable, Reason: "index put", Err: errors.New("dial tcp 10.0.0.5:5432: refused")},
			dimse.StatusOutOfResources, "storage unavailable, retry later"},
		{"not found (another kind)", ie(ingest.ErrNotFound, "gone"), dimse.StatusOutOfResources, "storage unavailable, retry later"},
		{"any other error", errors.New("unexpected EOF"), dimse.StatusOutOfResources, "storage unavailable, retry later"},
		{"association ended", context.Canceled, dimse.StatusOutOfResources, "storage unavailable, retry later"},
		{"wrapped", fmt.Errorf("dimse: %w", ie(ingest.ErrInvalid, "bad VR")), dimse.StatusCannotUnderstand, "bad VR"},
		{"bare sentinel", ingest.ErrMismatch, dimse.StatusDataSetMismatch, "data set does not match its declared identity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st := ingest.StoreStatus(tc.err); st.Code != tc.code || st.ErrorComment != tc.comment {
				t.Errorf("StoreStatus(%v) = 0x%04X %q, want 0x%04X %q", tc.err, st.Code, st.ErrorComment, tc.code, tc.comment)
			}
		})
	}
}

// withOtherStudy returns a data set (Explicit VR Little Endian) with the last digit of
// its StudyInstanceUID changed: the same series under another study.
func withOtherStudy(t *testing.T, ds []byte) []byte {
	t.Helper()
	out := bytes.Clone(ds)
	i := bytes.Index(out, []byte{0x20, 0x00, 0x0D, 0x00, 'U', 'I'})
	if i < 0 {
		t.Fatal("no StudyInstanceUID")
	}
	v := out[i+8 : i+8+int(binary.LittleEndian.Uint16(out[i+6:]))]
	j := len(bytes.TrimRight(v, "\x00 ")) - 1
	if v[j] == '9' {
		v[j] = '8'
	} else {
		v[j]++
	}
	return out
}

// TestStoreSCP stores over a real association on loopback: a C-STORE is answered
// Success once the object is in the store and the index, the stored object holding the
// data set byte for byte; the refusals carry the status of StoreStatus for errors made
// by the real pipeline; every C-STORE is audited.
func TestStoreSCP(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	ct, err := gen.CTSeries(gen.Options{Seed: 21}, 3, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			st, err := fs.New(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			idx := indextest.Open(t, be)
			trail := audit.New(idx, nil, quiet)
			t.Cleanup(trail.Close)
			p := &ingest.Pipeline{Store: st, Index: idx, Duplicates: ingest.Reject, Logger: quiet}
			srv := &dimse.Server{AETitle: "LUMEN", Logger: quiet, StoreHandler: &ingest.StoreSCP{Pipeline: p, Audit: trail, Log: quiet}}
			port := dimsetest.Serve(t, srv)
			ts, _ := dataset(t, ct[0].Data)
			c, err := dimse.Dial(context.Background(), "127.0.0.1:"+strconv.Itoa(port), dimse.DialConfig{
				CallingAETitle: "MODALITY", CalledAETitle: "LUMEN", Timeout: 20 * time.Second,
				Contexts: []dimse.ProposedContext{{AbstractSyntax: ct[0].SOPClassUID, TransferSyntaxes: []string{ts}}}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release()

			_, ds0 := dataset(t, ct[0].Data)
			_, ds1 := dataset(t, ct[1].Data)
			otherContent := bytes.Clone(ds0)
			otherContent[len(otherContent)-1] ^= 0xFF // a pixel: same UIDs, other bytes
			_, ds2 := dataset(t, ct[2].Data)
			moved := withOtherStudy(t, ds2)
			for _, tc := range []struct {
				name     string
				sop      string // AffectedSOPInstanceUID
				data     []byte
				code     uint16
				comment  string // part of the ErrorComment (at most 64 characters)
				stored   bool   // the data set is then what the index points to
				instance int64  // instances indexed after it
			}{
				{"stored", ct[0].SOPInstanceUID, ds0, dimse.StatusSuccess, "", true, 1},
				{"stored again, same content", ct[0].SOPInstanceUID, ds0, dimse.StatusSuccess, "", true, 1},
				{"same UID, other content, policy reject", ct[0].SOPInstanceUID, otherContent, dimse.StatusDuplicateSOPInstance, "SOP Instance UID stored with other content", false, 1},
				{"AffectedSOPInstanceUID is not the data set's", ct[2].SOPInstanceUID, ds1, dimse.StatusDataSetMismatch, "SOPInstanceUID in the data set differs from AffectedSOPInstance", false, 1},
				{"not a data set", ct[1].SOPInstanceUID, []byte("this is not DICOM at all, only text"), dimse.StatusCannotUnderstand, "malformed DICOM encoding", false, 1},
				{"second instance", ct[1].SOPInstanceUID, ds1, dimse.StatusSuccess, "", true, 2},
				{"series under another study", ct[2].SOPInstanceUID, moved, dimse.StatusCannotUnderstand, "series or study UID already belongs to another study or patient", false, 2},
			} {
				t.Run(tc.name, func(t *testing.T) {
					status, err := c.Store(context.Background(), ct[0].SOPClassUID, tc.sop, ts, bytes.NewReader(tc.data))
					if err != nil {
						t.Fatal(err)
					}
					if status.Code != tc.code || !strings.Contains(status.ErrorComment, tc.comment) || (tc.code == dimse.StatusSuccess) != (status.ErrorComment == "") {
						t.Fatalf("0x%04X %q, want 0x%04X %q", status.Code, status.ErrorComment, tc.code, tc.comment)
					}
					n, err := idx.Counts(context.Background())
					if err != nil || n.Instances != tc.instance {
						t.Fatalf("%d instances indexed (%v), want %d", n.Instances, err, tc.instance)
					}
					if !tc.stored {
						return
					}
					in, err := idx.Instance(context.Background(), tc.sop)
					if err != nil {
						t.Fatal(err)
					}
					rc, _, err := st.Get(context.Background(), in.BlobKey)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(rc)
					rc.Close()
					gotTS, got := dataset(t, b)
					if !bytes.Equal(got, tc.data) || gotTS != ts {
						t.Errorf("stored object holds %d bytes in %s, want the %d bytes sent in %s", len(got), gotTS, len(tc.data), ts)
					}
				})
			}
			list, err := trail.Search(context.Background(), index.AuditQuery{Actor: "ae:MODALITY", Action: "store"})
			if err != nil {
				t.Fatal(err)
			}
			var outcomes []string
			for _, r := range list {
				outcomes = append(outcomes, r.Outcome)
				if r.Detail != "C-STORE" || r.Via != "dimse" || !strings.HasPrefix(r.Remote, "127.0.0.1:") {
					t.Errorf("audit record %+v", r)
				}
			}
			if want := "0xC000 ok 0xC000 0xA900 0x0111 ok ok"; strings.Join(outcomes, " ") != want {
				t.Errorf("audited outcomes %v, want %s", outcomes, want)
			}
			if list[1].StudyInstanceUID != ct[1].StudyUID {
				t.Errorf("the C-STORE record names study %q, want %s", list[1].StudyInstanceUID, ct[1].StudyUID)
			}

			// The index goes away: out of resources, and the client may retry.
			idx.Close()
			status, err := c.Store(context.Background(), ct[0].SOPClassUID, ct[2].SOPInstanceUID, ts, bytes.NewReader(ds2))
			if err != nil || status.Code != dimse.StatusOutOfResources || status.ErrorComment != "storage unavailable, retry later" {
				t.Fatalf("index closed: %v 0x%04X %q, want 0xA700", err, status.Code, status.ErrorComment)
			}
		})
	}
}
