package dimse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Query/Retrieve information models for C-MOVE and C-GET (PS3.4 C.6).
const (
	PatientRootMove = "1.2.840.10008.5.1.4.1.2.1.2"
	StudyRootMove   = "1.2.840.10008.5.1.4.1.2.2.2"
	PatientRootGet  = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootGet    = "1.2.840.10008.5.1.4.1.2.2.3"
)

// StatusSubOperationsWarning is the final status of a retrieve whose sub-operations
// had failures or warnings (PS3.4 C.4.2.1.5: B000).
const StatusSubOperationsWarning uint16 = 0xB000

// RetrieveRequest is a C-MOVE-RQ or C-GET-RQ as handlers see it.
type RetrieveRequest struct {
	Association *AssociationInfo
	MessageID   uint16
	Priority    uint16
	// SOPClassUID is the information model (Patient Root or Study Root MOVE or GET).
	SOPClassUID string
	// TransferSyntaxUID encodes Identifier.
	TransferSyntaxUID string
	// Identifier is the retrieve keys (bounded to 1 MiB).
	Identifier []byte
	// Destination is the C-MOVE destination AE title; empty for C-GET.
	Destination string
}

// SubOperations counts a retrieve's sub-operations.
type SubOperations struct {
	Remaining, Completed, Failed, Warning int
}

// GetStorer sends C-GET sub-operations on the association the C-GET came on: the
// requestor acts as storage SCP for the SOP classes it proposed with the SCP role.
type GetStorer interface {
	// Accepted returns the transfer syntaxes accepted on the requestor's storage
	// contexts for sopClass (empty: the class cannot be sent).
	Accepted(sopClass string) []string
	// Store sends one C-STORE-RQ whose data set (encoded in ts, without meta
	// information) is streamed from data, and waits for its response.
	Store(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader) (Status, error)
}

// RetrieveHandler answers C-MOVE and C-GET. HandleRetrieve performs the
// sub-operations: to req.Destination over new associations (C-MOVE), or through get
// (non-nil only for C-GET). It calls progress with the counts after each sub-operation;
// the server sends them as a pending response. progress fails once the request is
// cancelled (C-CANCEL) or the association ends, and the handler then stops promptly and
// returns the counts so far. It returns the final status (Success; a failure such as
// A801 or C000 with a comment; the server turns Success into B000 or A702 when
// sub-operations failed), the counts, and the SOP Instance UIDs of failed
// sub-operations.
type RetrieveHandler interface {
	HandleRetrieve(ctx context.Context, req *RetrieveRequest, get GetStorer, progress func(SubOperations) error) (Status, SubOperations, []string)
}

// isRetrieveModel reports whether abstract is a C-MOVE or C-GET information model.
func isRetrieveModel(abstract string) (move, get bool) {
	switch abstract {
	case PatientRootMove, StudyRootMove:
		return true, false
	case PatientRootGet, StudyRootGet:
		return false, true
	}
	return false, false
}

// getStorer is the association's GetStorer for one C-GET.
type getStorer struct {
	a  *association
	op *findOp
}

func (g *getStorer) Accepted(sopClass string) []string {
	var out []string
	for _, pc := range g.a.contexts {
		if pc.abstract == sopClass && pc.scpRole {
			out = append(out, pc.transferSyntax)
		}
	}
	return out
}

func (g *getStorer) Store(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader) (Status, error) {
	var ctxID byte
	found := false
	for id, pc := range g.a.contexts {
		if pc.abstract == sopClass && pc.scpRole && pc.transferSyntax == ts {
			ctxID, found = id, true
			break
		}
	}
	if !found {
		return Status{}, ErrNoContext
	}
	id := uint16(g.a.subMsgID.Add(1))
	ch := make(chan Status, 1)
	g.op.mu.Lock()
	if g.op.stores == nil {
		g.op.stores = map[uint16]chan Status{}
	}
	g.op.stores[id] = ch
	g.op.mu.Unlock()
	defer func() {
		g.op.mu.Lock()
		delete(g.op.stores, id)
		g.op.mu.Unlock()
	}()
	rq := &Command{CommandField: CStoreRQ, MessageID: id, AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sopInstance,
		Priority: 0, CommandDataSetType: DataSetPresent, MoveOriginatorAETitle: "", MoveOriginatorMessageID: 0}
	if err := g.a.writeStream(ctx, ctxID, rq.Encode(), data); err != nil {
		return Status{}, err
	}
	t := time.NewTimer(g.a.s.idle())
	defer t.Stop()
	select {
	case st := <-ch:
		return st, nil
	case <-ctx.Done():
		return Status{}, ctx.Err()
	case <-g.a.ctx.Done():
		return Status{}, errAssociationAborted
	case <-t.C:
		return Status{}, errors.New("dimse: no C-STORE-RSP from the C-GET requestor")
	}
}

// deliverStoreResponse hands a C-STORE-RSP received during a C-GET to its sub-operation.
func (a *association) deliverStoreResponse(cmd *Command) {
	op := a.find
	if op == nil {
		a.log.Debug("dimse: C-STORE-RSP outside a C-GET ignored")
		return
	}
	op.mu.Lock()
	ch := op.stores[cmd.MessageIDBeingRespondedTo]
	op.mu.Unlock()
	if ch != nil {
		ch <- Status{Code: cmd.Status, ErrorComment: cmd.ErrorComment}
	}
}

// writeStream sends a command and a data set read from r as one unit, flagging the
// last data PDV. If the data set cannot be read, or ctx ends, the connection is closed:
// the peer waits for the rest of the message, and only an abort ends that cleanly.
func (a *association) writeStream(ctx context.Context, ctxID byte, cmd []byte, r io.Reader) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	p, err := newPDVWriter(a.conn, ctxID, a.peerMax)
	if err != nil {
		return err
	}
	defer p.release()
	if err := p.message(ctx, cmd, r); err != nil {
		a.conn.Close()
		return err
	}
	return nil
}

// failedUIDList encodes the identifier of a final retrieve response: Failed SOP
// Instance UID List (0008,0058) in transfer syntax ts (little endian, implicit or
// explicit VR).
func failedUIDList(ts string, uids []string) []byte {
	v := []byte(strings.Join(uids, `\`))
	if len(v)%2 == 1 {
		v = append(v, 0)
	}
	b := binary.LittleEndian.AppendUint16(nil, 0x0008)
	b = binary.LittleEndian.AppendUint16(b, 0x0058)
	if ts == ImplicitVRLittleEndian {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	} else {
		b = append(b, 'U', 'I')
		if len(v) > 0xFFFF {
			v = v[:0xFFFE] // a list this long is cut; the counts stay exact
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...)
}

// startRetrieve runs the retrieve handler, sending pending responses with the counts.
func (a *association) startRetrieve(in *incoming, pc acceptedContext) {
	cmd := in.cmd
	rspField := CMoveRSP
	if cmd.CommandField == CGetRQ {
		rspField = CGetRSP
	}
	req := &RetrieveRequest{Association: &a.info, MessageID: cmd.MessageID, Priority: cmd.Priority, SOPClassUID: cmd.AffectedSOPClassUID,
		TransferSyntaxUID: pc.transferSyntax, Identifier: in.identifier, Destination: strings.TrimSpace(cmd.MoveDestination)}
	rsp := func(st Status, n SubOperations, data []byte) error {
		c := &Command{CommandField: rspField, MessageIDBeingRespondedTo: cmd.MessageID, AffectedSOPClassUID: cmd.AffectedSOPClassUID,
			CommandDataSetType: NoDataSet, Status: st.Code, ErrorComment: st.ErrorComment,
			NumberOfRemainingSuboperations: uint16(min(n.Remaining, 0xFFFF)), NumberOfCompletedSuboperations: uint16(min(n.Completed, 0xFFFF)),
			NumberOfFailedSuboperations: uint16(min(n.Failed, 0xFFFF)), NumberOfWarningSuboperations: uint16(min(n.Warning, 0xFFFF))}
		if data != nil {
			c.CommandDataSetType = DataSetPresent
		}
		return a.writeMessage(in.ctxID, c.Encode(), data)
	}
	a.startOp(cmd.MessageID, func(ctx context.Context, f *findOp) {
		var get GetStorer
		if cmd.CommandField == CGetRQ {
			get = &getStorer{a: a, op: f}
		}
		st := Status{Code: StatusProcessingFailure, ErrorComment: "internal error"}
		var n SubOperations
		var failed []string
		a.guard("retrieve", func() {
			st, n, failed = a.s.RetrieveHandler.HandleRetrieve(ctx, req, get, func(p SubOperations) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				return rsp(Status{Code: StatusPending}, p, nil)
			})
		})
		if a.ctx.Err() != nil {
			return // the association is gone
		}
		switch {
		case f.cancelled.Load():
			st = Status{Code: StatusCancel}
		case st.Code == StatusSuccess && n.Failed > 0 && n.Completed == 0 && n.Warning == 0:
			st = Status{StatusOutOfResourcesSubops, fmt.Sprintf("all %d sub-operations failed", n.Failed)}
		case st.Code == StatusSuccess && (n.Failed > 0 || n.Warning > 0):
			st = Status{StatusSubOperationsWarning, fmt.Sprintf("%d of %d sub-operations failed", n.Failed, n.Failed+n.Completed+n.Warning)}
		}
		if st.Code == StatusSuccess || st.Code == StatusCancel {
			st.ErrorComment = ""
		}
		if st.Code != StatusCancel {
			n.Remaining = 0
		}
		var data []byte
		if len(failed) > 0 {
			data = failedUIDList(pc.transferSyntax, failed)
		}
		rsp(st, n, data)
		a.observe(cmd.CommandField, in.start, st.Code)
	})
}
