package qr_test

import (
	"context"
	"errors"
	"iter"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/qr"
)

// gatedIndex is a real index whose FindSeq hands over a record only once the one
// before it has been answered (answered is told by the test's send), and fails after
// failAfter records when failAfter > 0.
type gatedIndex struct {
	qr.Index
	answered  chan struct{}
	failAfter int
}

var errIndexDown = errors.New("the index went away")

// Find collects what FindSeq yields: a handler that collects the matches before
// answering them gets no further than the first.
func (g *gatedIndex) Find(ctx context.Context, q index.Query) (*index.Result, error) {
	ignored, seq := g.FindSeq(ctx, q)
	res := &index.Result{Ignored: ignored}
	for rec, err := range seq {
		if err != nil {
			return nil, err
		}
		if s, ok := rec.(*index.Study); ok {
			res.Studies = append(res.Studies, *s)
		}
	}
	return res, nil
}

func (g *gatedIndex) FindSeq(ctx context.Context, q index.Query) ([]dcm.Tag, iter.Seq2[index.Record, error]) {
	ignored, seq := g.Index.FindSeq(ctx, q)
	return ignored, func(yield func(index.Record, error) bool) {
		n := 0
		for rec, err := range seq {
			if n > 0 {
				select {
				case <-g.answered:
				case <-time.After(10 * time.Second): // a guard against a hang, not a timing assertion
					yield(nil, errors.New("the record before was not answered before the next was read"))
					return
				}
			}
			if g.failAfter > 0 && n == g.failAfter {
				yield(nil, errIndexDown)
				return
			}
			n++
			if !yield(rec, err) {
				return
			}
		}
	}
}

// TestFindStreams checks that C-FIND answers each match as the index reads it: the
// index hands over a match only after the one before it has gone out, which a handler
// collecting the matches first would never do. An index failing part way leaves the
// answers sent and ends with A700.
func TestFindStreams(t *testing.T) {
	for _, be := range indextest.Backends {
		t.Run(be, func(t *testing.T) {
			idx := indextest.Open(t, be)
			for _, in := range indextest.Fixture() {
				if err := idx.Put(context.Background(), in); err != nil {
					t.Fatal(err)
				}
			}
			for _, tc := range []struct {
				name      string
				failAfter int
				want      int
				code      uint16
			}{
				{"all matches", 0, 4, dimse.StatusSuccess},
				{"index fails after two", 2, 2, dimse.StatusOutOfResources},
			} {
				t.Run(tc.name, func(t *testing.T) {
					g := &gatedIndex{Index: idx, answered: make(chan struct{}, 1), failAfter: tc.failAfter}
					h := &qr.FindSCP{Index: g, AETitle: "LUMEN", Log: quiet}
					req := &dimse.FindRequest{Association: &dimse.AssociationInfo{CallingAETitle: "WS"}, SOPClassUID: dimse.StudyRootFind,
						TransferSyntaxUID: dcm.ExplicitVRLittleEndian, Identifier: ident(t, "STUDY", str(dcm.TagStudyInstanceUID, "UI"), str(dcm.TagPatientName, "PN", "*"))}
					sent := 0
					st := h.HandleFind(context.Background(), req, func([]byte, bool) error {
						sent++
						g.answered <- struct{}{}
						return nil
					})
					if st.Code != tc.code || sent != tc.want {
						t.Fatalf("0x%04X %q after %d answers, want 0x%04X after %d", st.Code, st.ErrorComment, sent, tc.code, tc.want)
					}
				})
			}
		})
	}
}
