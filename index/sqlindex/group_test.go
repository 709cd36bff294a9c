package sqlindex_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/index/sqlindex"
)

const ctClass = "1.2.840.10008.5.1.4.1.1.2"

// inst is a record of patient P1 (issuer HOSP) in study, series.
func inst(study, series, sop string) *index.Instance {
	in := &index.Instance{}
	in.PatientID, in.IssuerOfPatientID, in.PatientName = "P1", "HOSP", "Doe^Jane"
	in.StudyInstanceUID, in.SeriesInstanceUID, in.Modality = study, series, "CT"
	in.SOPInstanceUID, in.SOPClassUID = sop, ctClass
	in.TransferSyntaxUID = "1.2.840.10008.1.2.1"
	in.BlobKey, in.Size, in.Digest = "dicom/test/"+sop, 100, fmt.Sprintf("%064x", len(sop))
	in.Metadata = []byte(`{}`)
	return in
}

// gate holds Put transactions just before their commit: each commit reports its size
// on entered and waits for a value on release.
type gate struct {
	entered chan int
	release chan struct{}
}

func hold(t *testing.T, x *sqlindex.DB) *gate {
	g := &gate{entered: make(chan int, 100), release: make(chan struct{})}
	x.BeforeCommit = func(n int) {
		g.entered <- n
		<-g.release
	}
	t.Cleanup(g.open) // a failed test lets the held commits go (Close waits for them)
	return g
}

// open lets every commit go from now on.
func (g *gate) open() {
	select {
	case <-g.release:
	default:
		close(g.release)
	}
}

// waitQueued waits until n Puts wait for a batch.
func waitQueued(t *testing.T, x *sqlindex.DB, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for x.QueuedPuts() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d Puts queued, want %d", x.QueuedPuts(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type answer struct {
	sop string
	err error
}

// TestGroupCommit: Puts that arrive while a commit runs are committed together, in one
// transaction, and none returns before that transaction has committed; within the
// batch each gets its own answer: new instances are indexed (counts maintained), a SOP
// Instance UID indexed already (before, or earlier in the same batch) is ErrExists, a
// rejected one ErrRejected, and an instance whose series belongs to another study
// (ErrConflict, after it wrote) fails alone: the others are indexed all the same.
func TestGroupCommit(t *testing.T) {
	for _, backend := range indextest.Backends {
		t.Run(backend, func(t *testing.T) {
			for _, withConflict := range []bool{false, true} {
				t.Run(fmt.Sprintf("conflict=%v", withConflict), func(t *testing.T) {
					testGroupCommit(t, indextest.Open(t, backend), withConflict)
				})
			}
		})
	}
}

func testGroupCommit(t *testing.T, x *sqlindex.DB, withConflict bool) {
	ctx := context.Background()
	if err := x.Put(ctx, inst("2.1", "2.1.1", "2.1.1.0")); err != nil {
		t.Fatal(err)
	}
	if _, err := x.Reject(ctx, inst("2.1", "2.1.9", "2.1.9.1"), index.RejectQuality,
		[]index.RejectRef{{StudyInstanceUID: "2.1", SeriesInstanceUID: "2.1.1", SOPInstanceUID: "2.1.1.99", SOPClassUID: ctClass}}, index.Change{}); err != nil {
		t.Fatal(err)
	}
	g := hold(t, x)
	answers := make(chan answer, 20)
	put := func(in *index.Instance) {
		go func() { answers <- answer{in.SOPInstanceUID, x.Put(ctx, in)} }()
	}
	// The first Put commits alone; it is held before its commit while the rest queue.
	put(inst("2.1", "2.1.1", "2.1.1.1"))
	if n := <-g.entered; n != 1 {
		t.Fatalf("first commit of %d", n)
	}
	batch := []*index.Instance{
		inst("2.1", "2.1.1", "2.1.1.2"),
		inst("2.1", "2.1.2", "2.1.2.1"), // a new series
		inst("2.2", "2.2.1", "2.2.1.1"), // a new study
		inst("2.2", "2.2.1", "2.2.1.2"),
		inst("2.1", "2.1.1", "2.1.1.0"),  // indexed before
		inst("2.1", "2.1.1", "2.1.1.99"), // rejected
		inst("2.3", "2.3.1", "2.3.1.1"),  // the same UID twice in one batch
		inst("2.3", "2.3.1", "2.3.1.1"),
	}
	if withConflict {
		batch = append(batch, inst("2.9", "2.1.1", "2.9.1.1")) // series 2.1.1 is in study 2.1
	}
	for _, in := range batch {
		put(in)
	}
	waitQueued(t, x, len(batch))
	select {
	case a := <-answers:
		t.Fatalf("Put %s returned %v before its commit", a.sop, a.err)
	case <-time.After(100 * time.Millisecond):
	}
	g.release <- struct{}{}
	if a := <-answers; a.sop != "2.1.1.1" || a.err != nil {
		t.Fatalf("first Put = %s, %v", a.sop, a.err)
	}
	// The rest: one transaction, held before its commit. (With the conflict the batch
	// is rolled back before its commit and each instance indexed in a transaction of
	// its own, the first held here.)
	want := len(batch)
	if withConflict {
		want = 1
	}
	if n := <-g.entered; n != want {
		t.Fatalf("commit of %d, want %d", n, want)
	}
	select {
	case a := <-answers:
		t.Fatalf("Put %s returned %v before its transaction committed", a.sop, a.err)
	case <-time.After(100 * time.Millisecond):
	}
	// Indexed so far: 2.1.1.0, the rejection note and 2.1.1.1.
	if c, err := x.Counts(ctx); err != nil || c.Instances != 3 {
		t.Fatalf("before the batch committed: %+v, %v", c, err)
	}
	g.open()
	got := map[string][]error{}
	for range batch {
		a := <-answers
		got[a.sop] = append(got[a.sop], a.err)
	}
	x.BeforeCommit = nil
	for _, sop := range []string{"2.1.1.2", "2.1.2.1", "2.2.1.1", "2.2.1.2"} {
		if errs := got[sop]; len(errs) != 1 || errs[0] != nil {
			t.Errorf("%s: %v", sop, errs)
		}
	}
	if errs := got["2.1.1.0"]; len(errs) != 1 || !errors.Is(errs[0], index.ErrExists) {
		t.Errorf("indexed before: %v", errs)
	}
	if errs := got["2.1.1.99"]; len(errs) != 1 || !errors.Is(errs[0], index.ErrRejected) {
		t.Errorf("rejected: %v", errs)
	}
	if errs := got["2.3.1.1"]; len(errs) != 2 || (errs[0] == nil) == (errs[1] == nil) ||
		!errors.Is(errs[0], index.ErrExists) && !errors.Is(errs[1], index.ErrExists) {
		t.Errorf("twice in one batch: %v", errs)
	}
	if withConflict {
		if errs := got["2.9.1.1"]; len(errs) != 1 || !errors.Is(errs[0], index.ErrConflict) {
			t.Errorf("conflict: %v", errs)
		}
	}
	c, err := x.Counts(ctx)
	if err != nil || c.Instances != 8 || c.Studies != 3 || c.Series != 5 || c.Patients != 1 {
		t.Fatalf("counts %+v, %v", c, err)
	}
	for _, want := range []struct {
		study             string
		series, instances int
	}{{"2.1", 3, 5}, {"2.2", 1, 2}, {"2.3", 1, 1}} {
		r, err := x.Find(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: 0x0020000D, Value: want.study}}})
		if err != nil || len(r.Studies) != 1 {
			t.Fatalf("study %s: %+v, %v", want.study, r, err)
		}
		if st := r.Studies[0]; st.NumberOfStudyRelatedSeries != want.series || st.NumberOfStudyRelatedInstances != want.instances {
			t.Errorf("study %s: %d series, %d instances; want %d, %d", want.study, st.NumberOfStudyRelatedSeries, st.NumberOfStudyRelatedInstances, want.series, want.instances)
		}
	}
}

// TestGroupCommitConcurrent: many writers, with each SOP Instance UID sent twice, end
// with every instance indexed once and each UID answered once nil and once ErrExists.
func TestGroupCommitConcurrent(t *testing.T) {
	for _, backend := range indextest.Backends {
		t.Run(backend, func(t *testing.T) {
			x := indextest.Open(t, backend)
			const writers, each = 8, 25
			var mu sync.Mutex
			got := map[string][]error{}
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						// Writers w and w^1 send the same instances.
						sop := fmt.Sprintf("3.%d.%d", w/2, i)
						err := x.Put(context.Background(), inst(fmt.Sprintf("3.%d", i%3), fmt.Sprintf("3.%d.%d", i%3, w%2), sop))
						mu.Lock()
						got[sop] = append(got[sop], err)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			for sop, errs := range got {
				ok, exists := 0, 0
				for _, err := range errs {
					switch {
					case err == nil:
						ok++
					case errors.Is(err, index.ErrExists):
						exists++
					default:
						t.Errorf("%s: %v", sop, err)
					}
				}
				if ok != 1 || exists != 1 {
					t.Errorf("%s: %v", sop, errs)
				}
			}
			if c, err := x.Counts(context.Background()); err != nil || c.Instances != writers/2*each {
				t.Fatalf("counts %+v, %v", c, err)
			}
		})
	}
}

// TestPutAfterClose: Close waits for the commit in progress; a later Put fails.
func TestPutAfterClose(t *testing.T) {
	x := indextest.Open(t, "sqlite")
	g := hold(t, x)
	done := make(chan error, 1)
	go func() { done <- x.Put(context.Background(), inst("4.1", "4.1.1", "4.1.1.1")) }()
	<-g.entered
	closed := make(chan error, 1)
	go func() { closed <- x.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned %v during a commit", err)
	case <-time.After(100 * time.Millisecond):
	}
	g.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := x.Put(context.Background(), inst("4.1", "4.1.1", "4.1.1.2")); err == nil {
		t.Fatal("Put after Close succeeded")
	}
}
