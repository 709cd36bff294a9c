package dimsetest

import (
	"context"
	"io"
	"sync"

	"github.com/lumenpacs/lumen/dimse"
)

// Received is one C-STORE a Recorder received.
type Received struct {
	SOPClassUID, SOPInstanceUID, TransferSyntaxUID string
	CallingAETitle, MoveOriginatorAETitle          string
	Data                                           []byte // the data set as received
}

// Recorder is a storage SCP (a dimse.StoreHandler standing in for storescp) that keeps
// every C-STORE it receives, in order, and answers Success.
type Recorder struct {
	mu  sync.Mutex
	got []Received
}

// HandleStore keeps the request and its data set.
func (r *Recorder) HandleStore(_ context.Context, req *dimse.StoreRequest, data io.Reader) dimse.Status {
	b, err := io.ReadAll(data)
	if err != nil {
		return dimse.Status{Code: dimse.StatusOutOfResources}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, Received{SOPClassUID: req.SOPClassUID, SOPInstanceUID: req.SOPInstanceUID, TransferSyntaxUID: req.TransferSyntaxUID,
		CallingAETitle: req.Association.CallingAETitle, MoveOriginatorAETitle: req.MoveOriginatorAETitle, Data: b})
	return dimse.Status{Code: dimse.StatusSuccess}
}

// Received returns what arrived so far, in order.
func (r *Recorder) Received() []Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Received(nil), r.got...)
}

// Take returns what arrived since the last Take, by SOP Instance UID.
func (r *Recorder) Take() map[string]Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]Received{}
	for _, x := range r.got {
		m[x.SOPInstanceUID] = x
	}
	r.got = nil
	return m
}
