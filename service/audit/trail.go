package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
)

// Trail writes the audit trail (index.Auditor) off the request path: records are
// queued and written by one goroutine in batches, one transaction each, so that audited
// requests (every QIDO, WADO and thumbnail) do not each wait for a durable write. A
// write that fails is logged, and the action it records is not undone. Searching
// flushes the queue first, and close writes what is left.
type Trail struct {
	a      index.Auditor
	syslog *Syslog // nil: no export
	log    *slog.Logger
	queue  chan auditItem // nil: no audit table
	done   chan struct{}
	mu     sync.RWMutex // closed is set under the write lock; senders hold the read lock
	closed bool
}

// auditItem is a record to write, or (flushed set) a request to be told when every
// record queued before it is written.
type auditItem struct {
	r       index.AuditRecord
	flushed chan struct{}
}

// New starts the audit trail of an index: records go to the index's audit table when it
// keeps one (index.Auditor), and to syslog when set. log must not be nil.
func New(idx index.Index, syslog *Syslog, log *slog.Logger) *Trail {
	x := &Trail{log: log, syslog: syslog}
	if a, ok := idx.(index.Auditor); ok {
		x.a, x.queue, x.done = a, make(chan auditItem, 4096), make(chan struct{})
		go x.run()
	}
	return x
}

// batchLinger is how long a batch waits for more records before it is written.
const batchLinger = 20 * time.Millisecond

// run writes queued records in batches of at most 500.
func (x *Trail) run() {
	defer close(x.done)
	for it := range x.queue {
		var batch []*index.AuditRecord
		var waiters []chan struct{}
		add := func(it auditItem) {
			if it.flushed != nil {
				waiters = append(waiters, it.flushed)
			} else {
				batch = append(batch, &it.r)
			}
		}
		add(it)
		// Records that come within batchLinger join the batch: a client making one
		// request at a time (an HL7 sender, a viewer) then costs one durable write per
		// batch, not one per request, and leaves the index's writer to the requests. A
		// flush (a search, Close) ends the wait.
		linger := time.NewTimer(batchLinger)
	more:
		for len(batch) < 500 && len(waiters) == 0 {
			select {
			case it, ok := <-x.queue:
				if !ok {
					break more
				}
				add(it)
			case <-linger.C:
				break more
			}
		}
		linger.Stop()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := x.a.Audit(ctx, batch...); err != nil {
			x.log.Warn("audit: records not written", "records", len(batch), "err", err)
		}
		cancel()
		for _, w := range waiters {
			close(w)
		}
	}
}

// Record queues a record (its values bounded, At set to now when zero). It blocks only
// when 4,096 records wait to be written: back-pressure, no loss.
func (x *Trail) Record(_ context.Context, r index.AuditRecord) {
	if x == nil {
		return
	}
	boundAudit(&r)
	if r.At.IsZero() {
		r.At = time.Now()
	}
	if x.syslog != nil {
		x.syslog.enqueue(r)
	}
	x.send(auditItem{r: r}) // blocks only when 4,096 records wait: back-pressure, no loss
}

// send queues an item unless the auditor is closed (a request still running after a
// failed start-up, say): then the item is dropped.
func (x *Trail) send(it auditItem) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.queue == nil || x.closed {
		return false
	}
	x.queue <- it
	return true
}

// Flush waits until every record queued so far is written.
func (x *Trail) Flush() {
	if x == nil {
		return
	}
	ch := make(chan struct{})
	if x.send(auditItem{flushed: ch}) {
		<-ch
	}
}

// Close writes what is queued and stops; no record may be made after it.
func (x *Trail) Close() {
	if x == nil || x.queue == nil {
		return
	}
	x.mu.Lock()
	if !x.closed {
		x.closed = true
		close(x.queue)
	}
	x.mu.Unlock()
	<-x.done
}

// Bounds of the values of an audit record: what a request names is the caller's to
// choose, and an unauthenticated caller must not be able to write megabytes per row.
// UIDs are at most 64 characters (PS3.5 9.1), IDs (LO) 64, AE titles 16.
const (
	maxAuditUID    = 64
	maxAuditID     = 64
	maxAuditActor  = 128
	maxAuditRemote = 64
	maxAuditDetail = 256
)

// boundAudit truncates a record's values to their bounds and, when it cut any, says so
// in Detail (which fields, and how long they were).
func boundAudit(r *index.AuditRecord) {
	var cut []string
	for _, f := range []struct {
		name string
		v    *string
		max  int
	}{
		{"study", &r.StudyInstanceUID, maxAuditUID}, {"patient", &r.PatientID, maxAuditID}, {"issuer", &r.IssuerOfPatientID, maxAuditID},
		{"actor", &r.Actor, maxAuditActor}, {"remote", &r.Remote, maxAuditRemote}, {"detail", &r.Detail, maxAuditDetail},
	} {
		if len(*f.v) > f.max {
			cut = append(cut, fmt.Sprintf("%s %d bytes", f.name, len(*f.v)))
			*f.v = strings.ToValidUTF8((*f.v)[:f.max], "")
		}
	}
	if len(cut) > 0 {
		note := " [truncated: " + strings.Join(cut, ", ") + "]"
		r.Detail = strings.ToValidUTF8(r.Detail[:min(len(r.Detail), maxAuditDetail-len(note))], "") + note
	}
}

// DIMSE records a DIMSE action of an association: the calling AE title is the actor,
// op (C-STORE, C-FIND...) the detail, and a status other than Success the outcome.
func (x *Trail) DIMSE(ctx context.Context, as *dimse.AssociationInfo, action, op string, st dimse.Status, study, patient, issuer string) {
	outcome := "ok"
	if st.Code != dimse.StatusSuccess {
		outcome = fmt.Sprintf("0x%04X", st.Code)
	}
	remote := ""
	if as.RemoteAddr != nil {
		remote = as.RemoteAddr.String()
	}
	x.Record(ctx, index.AuditRecord{Actor: "ae:" + as.CallingAETitle, Via: "dimse", Action: action, Outcome: outcome,
		StudyInstanceUID: study, PatientID: patient, IssuerOfPatientID: issuer, Remote: remote, Detail: op})
}

// ErrNoTrail reports a search of an index that keeps no audit trail.
var ErrNoTrail = errors.New("audit: the index keeps no audit trail")

// Search answers the records matching q, newest first, after every record queued so
// far is written (what was done before the search is in its answer).
func (x *Trail) Search(ctx context.Context, q index.AuditQuery) ([]index.AuditRecord, error) {
	if x == nil || x.a == nil {
		return nil, ErrNoTrail
	}
	x.Flush()
	return x.a.FindAudit(ctx, q)
}
