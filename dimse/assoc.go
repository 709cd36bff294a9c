package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// writeTimeout bounds each PDU write.
const writeTimeout = 60 * time.Second

// maxCommandLength bounds a command set assembled from PDV fragments.
const maxCommandLength = 64 << 10

// errAssociationAborted is what an in-flight handler reads when the association ends.
var errAssociationAborted = errors.New("dimse: association aborted")

type acceptedContext struct {
	abstract, transferSyntax string
	// scpRole: the requestor accepted the SCP role for this storage SOP class (C-GET).
	scpRole bool
}

// association is one accepted transport connection driven by the PS3.8 state machine.
type association struct {
	s        *Server
	conn     net.Conn
	state    State
	log      *slog.Logger
	info     AssociationInfo
	contexts map[byte]acceptedContext
	peerMax  uint32
	buf      []byte
	artimAt  time.Time // zero: ARTIM stopped
	ctx      context.Context
	cancel   context.CancelFunc
	counted  bool
	peerKey  aeAddress   // counted against MaxAssociationsPerAE while counted
	aborting atomic.Bool // Shutdown asked for an abort

	// Connection accounting (under s.mu): the source address, whether the connection
	// holds one of the address's places for connections without an association, and
	// whether it counts among the strangers' connections.
	addr     string
	addrHeld bool
	stranger bool

	// rd is what PDUs are read from (pduReader).
	rd io.Reader

	cmdBuf   []byte
	cmdCtx   byte
	cmdStart time.Time // when the last command set arrived
	cur      *incoming
	// store is a C-STORE whose command set just arrived: pdata runs its handler
	// (runStore) with the PDVs that follow.
	store *incoming

	abortReason byte // reason for AA-8
	panicked    bool

	wmu  sync.Mutex // serialises writes (find and retrieve handlers send from their own goroutine)
	find *findOp    // the C-FIND, C-MOVE or C-GET being answered, if any

	subMsgID atomic.Uint32 // message IDs of C-GET sub-operations and N-EVENT-REPORTs

	reportMu sync.Mutex
	reports  []pendingReport // storage commitment results awaiting their response
}

// findOp is a C-FIND, C-MOVE or C-GET in progress.
type findOp struct {
	msgID     uint16
	cancel    context.CancelFunc
	cancelled atomic.Bool
	done      chan struct{}

	mu     sync.Mutex
	stores map[uint16]chan Status // C-GET: the sub-operations awaiting their C-STORE-RSP
}

// incoming is a DIMSE request whose data set is arriving.
type incoming struct {
	start time.Time // when the command arrived
	ctxID byte
	cmd   *Command
	req   *StoreRequest // a C-STORE for runStore
	// status is the answer decided before the data set ended (a refusal, or a store
	// handler that returned early): the rest of the data set is discarded.
	status *Status
	// identifier collects a C-FIND identifier (non-nil for C-FIND).
	identifier []byte
}

// maxIdentifierLength bounds a C-FIND identifier.
const maxIdentifierLength = 1 << 20

func newAssociation(s *Server, conn net.Conn) *association {
	ctx, cancel := context.WithCancel(context.Background())
	return &association{s: s, conn: conn, rd: pduReader(conn), state: Sta1, log: s.log().With("remote", conn.RemoteAddr().String()), ctx: ctx, cancel: cancel}
}

func (a *association) abortLocal() {
	a.aborting.Store(true)
	a.cancel() // handlers waiting on ctx return; their pipes are closed (startStore)
	a.conn.SetDeadline(time.Now())
}

// uncount releases the association's place under the association limits.
func (a *association) uncount() {
	if !a.counted {
		return
	}
	a.counted = false
	a.s.unadmit(a)
}

func (a *association) serve() {
	defer a.conn.Close()
	defer a.cancel()
	defer a.uncount()
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("dimse: association panic; aborted", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			a.send(&AAbort{Source: AbortSourceServiceUser})
		}
	}()
	a.fire(Evt5, nil)
	for a.state != Sta1 {
		if a.aborting.Load() {
			if a.state != Sta13 && a.state != Sta2 {
				a.log.Info("dimse: association aborted by server shutdown")
				a.fire(Evt15, nil)
			}
			a.fire(Evt17, nil) // do not wait for the peer to close: we are going away
			break
		}
		if a.state == Sta13 {
			a.drain()
			continue
		}
		a.setReadDeadline()
		p, buf, err := ReadPDU(a.rd, a.s.maxPDU(), a.buf)
		a.buf = buf
		if err != nil {
			a.readFailed(err)
			continue
		}
		a.fire(pduEvent(p), p)
	}
	a.endMessage()
}

// drain discards what the peer still sends in Sta13 (PDUs are ignored there, and after an
// invalid PDU the stream may not even be aligned on PDUs) until it closes the transport
// (Evt17) or ARTIM expires (Evt18).
func (a *association) drain() {
	if a.artimAt.IsZero() {
		a.startARTIM()
	}
	a.conn.SetReadDeadline(a.artimAt)
	_, err := io.Copy(io.Discard, a.rd)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !a.aborting.Load() {
		a.fire(Evt18, nil)
		return
	}
	a.fire(Evt17, nil)
}

func (a *association) setReadDeadline() {
	switch {
	case !a.artimAt.IsZero():
		a.conn.SetReadDeadline(a.artimAt)
	case a.find != nil:
		// Responses are flowing: the peer may rightly stay silent (writes have deadlines).
		a.conn.SetReadDeadline(time.Time{})
	case a.state == Sta6 || a.state == Sta8:
		a.conn.SetReadDeadline(time.Now().Add(a.s.idle()))
	default:
		a.conn.SetReadDeadline(time.Now().Add(a.s.artim()))
	}
}

func (a *association) readFailed(err error) {
	var ne net.Error
	var pe *PDUError
	switch {
	case a.aborting.Load():
		// handled at the top of the loop (the deadline was cut short on purpose)
	case errors.As(err, &pe):
		a.log.Warn("dimse: invalid PDU; aborting association", "err", err, "state", a.state.String())
		a.abortReason = pe.Reason
		a.fire(Evt19, nil)
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		if !a.artimAt.IsZero() || a.state == Sta2 {
			if a.state == Sta2 {
				a.log.Debug("dimse: no A-ASSOCIATE-RQ in time; connection closed", "associate_request_timeout", a.s.associateRequestTimeout().String())
			}
			a.fire(Evt18, nil)
			return
		}
		a.log.Warn("dimse: peer silent beyond the idle timeout; aborting association", "idle_timeout", a.s.idle().String(), "state", a.state.String())
		a.fire(Evt15, nil)
	default:
		if a.state != Sta13 && !errors.Is(err, io.EOF) {
			a.log.Info("dimse: transport closed", "err", err, "state", a.state.String())
		}
		a.fire(Evt17, nil)
	}
}

// fire runs the state machine for event e (with the PDU that caused it, if any).
func (a *association) fire(e Event, p PDU) {
	tr, ok := Lookup(a.state, e)
	if !ok {
		// An event the table does not expect in this state: treat as a protocol error.
		tr = Transition{AA8, Sta13}
		if a.state == Sta1 {
			return
		}
	}
	from := a.state
	a.state = tr.Next
	if a.state == Sta13 || a.state == Sta1 {
		// The association no longer counts against the limit once it is being released
		// or aborted (before the A-RELEASE-RP goes out, so a peer that reconnects at once
		// finds the slot free).
		a.uncount()
	}
	switch tr.Action {
	case AE5:
		// The peer has a short time to send its A-ASSOCIATE-RQ (not the release ARTIM).
		a.artimAt = time.Now().Add(a.s.associateRequestTimeout())
	case AE6:
		a.stopARTIM()
		a.associateIndication(p.(*AAssociate))
	case AE7, AE8, DT1, AR1, AR7, AR9:
		// Sent by the primitives that fire Evt7/8/9/11/14 (see accept, reject, release).
	case DT2, AR6:
		a.pdata(p.(*PDataTF))
	case AR2:
		a.endMessage()
		a.fire(Evt14, nil)
	case AR4:
		a.send(&AReleaseRP{})
		a.startARTIM()
	case AA1:
		a.endMessage()
		a.send(&AAbort{Source: AbortSourceServiceUser, Reason: AbortReasonNotSpecified})
		a.startARTIM()
	case AA2:
		a.stopARTIM()
		a.conn.Close()
	case AA3:
		if ab, ok := p.(*AAbort); ok && from == Sta6 {
			a.log.Info("dimse: association aborted by peer", "source", ab.Source, "reason", ab.Reason)
		}
		a.endMessage()
		a.conn.Close()
	case AA4:
		a.endMessage()
	case AA5, AR5:
		a.stopARTIM()
	case AA6:
		// ignore the PDU
	case AA7:
		a.send(&AAbort{Source: AbortSourceServiceProvider, Reason: AbortReasonUnexpectedPDU})
	case AA8:
		a.endMessage()
		reason := a.abortReason
		if e != Evt19 {
			reason = AbortReasonUnexpectedPDU
		}
		a.send(&AAbort{Source: AbortSourceServiceProvider, Reason: reason})
		a.startARTIM()
	}
	if a.state == Sta1 || a.state == Sta13 {
		a.cancel()
	}
}

func (a *association) startARTIM() { a.artimAt = time.Now().Add(a.s.artim()) }
func (a *association) stopARTIM()  { a.artimAt = time.Time{} }

func (a *association) send(p PDU) {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	a.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := a.conn.Write(EncodePDU(p)); err != nil {
		a.log.Debug("dimse: write failed", "err", err)
	}
}

// associateIndication decides on an A-ASSOCIATE-RQ (the local user's response).
func (a *association) associateIndication(rq *AAssociate) {
	a.info = AssociationInfo{
		CallingAETitle: rq.CallingAETitle, CalledAETitle: rq.CalledAETitle, RemoteAddr: a.conn.RemoteAddr(),
		ImplementationClassUID: rq.UserInformation.ImplementationClassUID, ImplementationVersionName: rq.UserInformation.ImplementationVersionName,
	}
	log := a.log.With("calling_ae", rq.CallingAETitle, "called_ae", rq.CalledAETitle)
	if a.s.closing.Load() {
		log.Info("dimse: association rejected: server shutting down")
		a.reject(&AAssociateRJ{RJTransient, RJSourceServiceProviderPresentation, RJReasonTemporaryCongestion})
		return
	}
	ac, rj, why, trusted := a.s.negotiate(rq, a.conn.RemoteAddr())
	if rj != nil {
		log.Warn("dimse: association rejected", "reason", why, "result", rj.Result, "source", rj.Source, "diag", rj.Reason)
		a.reject(rj)
		return
	}
	if why, limit := a.s.admit(a, rq.CallingAETitle, trusted); why != "" {
		log.Warn("dimse: association rejected: "+why, "limit", limit, "configured_peer_from_its_host", trusted)
		a.reject(&AAssociateRJ{RJTransient, RJSourceServiceProviderPresentation, RJReasonLocalLimitExceeded})
		return
	}
	a.contexts = map[byte]acceptedContext{}
	accepted := 0
	scp := map[string]bool{}
	for _, r := range ac.UserInformation.Roles {
		scp[r.SOPClassUID] = r.SCP
	}
	for i, pc := range ac.PresentationContexts {
		if pc.Result == ResultAcceptance {
			abstract := rq.PresentationContexts[i].AbstractSyntax
			a.contexts[pc.ID] = acceptedContext{abstract: abstract, transferSyntax: pc.TransferSyntaxes[0], scpRole: scp[abstract]}
			accepted++
		}
	}
	if _, err := pdvChunk(rq.UserInformation.MaxPDULength); err != nil {
		// No message could be sent within the peer's maximum PDU length.
		a.uncount()
		log.Warn("dimse: association rejected", "reason", err.Error())
		a.reject(&AAssociateRJ{RJPermanent, RJSourceServiceUser, RJReasonNoReason})
		return
	}
	a.peerMax = rq.UserInformation.MaxPDULength
	a.log = log
	log.Info("dimse: association accepted", "contexts", len(rq.PresentationContexts), "accepted", accepted, "peer_max_pdu", a.peerMax, "implementation", rq.UserInformation.ImplementationVersionName)
	a.state = Sta3
	a.fire(Evt7, nil)
	a.send(ac)
}

func (a *association) reject(rj *AAssociateRJ) {
	a.state = Sta3
	a.fire(Evt8, nil)
	a.send(rj)
	a.startARTIM()
}

// protocolAbort aborts the association for a DIMSE-level violation (AA-8).
func (a *association) protocolAbort(reason byte, format string, args ...any) {
	a.log.Warn("dimse: protocol violation; aborting association", "problem", fmt.Sprintf(format, args...))
	a.abortReason = reason
	a.fire(Evt19, nil)
}

// pdata handles a P-DATA-TF PDU in Sta6 (DT-2).
func (a *association) pdata(p *PDataTF) {
	for pdvs := p.PDVs; len(pdvs) > 0; {
		v := pdvs[0]
		pdvs = pdvs[1:]
		if a.state != Sta6 && a.state != Sta7 {
			return
		}
		pc, ok := a.contexts[v.ContextID]
		if !ok {
			a.protocolAbort(AbortReasonInvalidParamValue, "PDV for presentation context %d, which was not accepted", v.ContextID)
			return
		}
		if v.Command {
			if a.cur != nil {
				a.protocolAbort(AbortReasonUnexpectedParam, "command PDV while a data set is still arriving")
				return
			}
			if len(a.cmdBuf) > 0 && v.ContextID != a.cmdCtx {
				a.protocolAbort(AbortReasonUnexpectedParam, "command fragments on two presentation contexts")
				return
			}
			if len(a.cmdBuf)+len(v.Data) > maxCommandLength {
				a.protocolAbort(AbortReasonInvalidParamValue, "command set longer than %d bytes", maxCommandLength)
				return
			}
			a.cmdCtx = v.ContextID
			a.cmdBuf = append(a.cmdBuf, v.Data...)
			if v.Last {
				b := a.cmdBuf
				a.cmdBuf = a.cmdBuf[:0]
				a.cmdStart = time.Now()
				a.dispatch(v.ContextID, pc, b)
				if in := a.store; in != nil {
					a.store = nil
					pdvs = a.runStore(in, pdvs)
				}
			}
			continue
		}
		if a.cur == nil || a.cur.ctxID != v.ContextID {
			a.protocolAbort(AbortReasonUnexpectedParam, "data set PDV on context %d without a command announcing it", v.ContextID)
			return
		}
		if a.cur.identifier != nil {
			if len(a.cur.identifier)+len(v.Data) > maxIdentifierLength {
				a.protocolAbort(AbortReasonInvalidParamValue, "C-FIND identifier longer than %d bytes", maxIdentifierLength)
				return
			}
			a.cur.identifier = append(a.cur.identifier, v.Data...)
			if v.Last {
				in := a.cur
				a.cur = nil
				switch in.cmd.CommandField {
				case CFindRQ:
					a.startFind(in, pc)
				case NActionRQ:
					a.startCommit(in, pc)
				case NEventReportRQ:
					a.receiveReport(in, pc)
				default:
					a.startRetrieve(in, pc)
				}
			}
			continue
		}
		// The rest of a data set whose handler has answered already (runStore), or
		// that a request refused before it arrived: discarded.
		if v.Last {
			a.finishMessage()
		}
	}
}

// endMessage stops the operation in progress (the association is ending): a find or
// retrieve handler, waited for, or a data set being discarded.
func (a *association) endMessage() {
	if f := a.find; f != nil {
		a.cancel() // the association is ending: the find goroutine sends nothing more
		f.cancel()
		<-f.done
		a.find = nil
	}
	if a.cur == nil {
		return
	}
	a.cancel()
	a.cur = nil
}

// finishMessage answers a request whose data set has ended with the status decided.
func (a *association) finishMessage() {
	in := a.cur
	a.cur = nil
	a.respond(in.ctxID, in.cmd, *in.status)
	if a.panicked {
		a.fire(Evt15, nil)
	}
}

// dispatch handles a complete command set.
func (a *association) dispatch(ctxID byte, pc acceptedContext, b []byte) {
	cmd, err := DecodeCommand(b)
	if err != nil {
		a.protocolAbort(AbortReasonInvalidParamValue, "undecodable command set: %v", err)
		return
	}
	switch cmd.CommandField {
	case CStoreRSP:
		a.deliverStoreResponse(cmd) // a C-GET sub-operation's response
		return
	case NEventReportRSP:
		a.deliverReportResponse(cmd) // a storage commitment result's response
		return
	}
	if a.find != nil && cmd.CommandField != CCancelRQ {
		// One operation at a time (asynchronous operations window 1): finish the find.
		<-a.find.done
		a.find = nil
	}
	var st *Status
	switch cmd.CommandField {
	case CEchoRQ:
		st = &Status{Code: StatusSuccess}
		if !cmd.Has(tagMessageID) {
			st = &Status{StatusCannotUnderstand, "C-ECHO-RQ lacks MessageID (0000,0110)"}
		}
	case CStoreRQ:
		if s := a.checkStore(cmd, pc); s != nil {
			st = s
			break
		}
		a.startStore(ctxID, pc, cmd)
		return
	case CFindRQ:
		if a.s.FindHandler == nil || (pc.abstract != PatientRootFind && pc.abstract != StudyRootFind) {
			st = &Status{StatusSOPClassNotSupported, "C-FIND not supported on this presentation context"}
			break
		}
		if !cmd.Has(tagMessageID) || !cmd.HasDataSet() {
			st = &Status{StatusCannotUnderstand, "C-FIND-RQ lacks MessageID or identifier"}
			break
		}
		a.cur = &incoming{start: a.cmdStart, ctxID: ctxID, cmd: cmd, identifier: []byte{}}
		return
	case CMoveRQ, CGetRQ:
		move, get := isRetrieveModel(pc.abstract)
		switch {
		case a.s.RetrieveHandler == nil || cmd.CommandField == CMoveRQ && !move || cmd.CommandField == CGetRQ && !get:
			st = &Status{StatusSOPClassNotSupported, "C-MOVE/C-GET not supported on this presentation context"}
		case !cmd.Has(tagMessageID) || !cmd.HasDataSet():
			st = &Status{StatusCannotUnderstand, "request lacks MessageID or identifier"}
		case cmd.CommandField == CMoveRQ && strings.TrimSpace(cmd.MoveDestination) == "":
			st = &Status{StatusMoveDestinationUnknown, "C-MOVE-RQ lacks MoveDestination (0000,0600)"}
		}
		if st != nil {
			break
		}
		a.cur = &incoming{start: a.cmdStart, ctxID: ctxID, cmd: cmd, identifier: []byte{}}
		return
	case NActionRQ:
		switch {
		case a.s.CommitHandler == nil || pc.abstract != StorageCommitmentSOPClass:
			st = &Status{StatusSOPClassNotSupported, "N-ACTION not supported on this presentation context"}
		case !cmd.Has(tagMessageID) || !cmd.HasDataSet():
			st = &Status{StatusCannotUnderstand, "N-ACTION-RQ lacks MessageID or action information"}
		case cmd.ActionTypeID != 1:
			st = &Status{StatusNoSuchAction, "storage commitment has action type 1 only"}
		}
		if st != nil {
			break
		}
		a.cur = &incoming{start: a.cmdStart, ctxID: ctxID, cmd: cmd, identifier: []byte{}}
		return
	case NEventReportRQ:
		switch {
		case a.s.EventReportHandler == nil || pc.abstract != StorageCommitmentSOPClass:
			st = &Status{StatusSOPClassNotSupported, "N-EVENT-REPORT not supported on this presentation context"}
		case !cmd.Has(tagMessageID) || !cmd.HasDataSet():
			st = &Status{StatusCannotUnderstand, "N-EVENT-REPORT-RQ lacks MessageID or event information"}
		}
		if st != nil {
			break
		}
		a.cur = &incoming{start: a.cmdStart, ctxID: ctxID, cmd: cmd, identifier: []byte{}}
		return
	case CCancelRQ:
		if f := a.find; f != nil && cmd.MessageIDBeingRespondedTo == f.msgID {
			f.cancelled.Store(true)
			f.cancel()
		}
		return
	default:
		st = &Status{StatusUnrecognizedOperation, fmt.Sprintf("command 0x%04X not supported on this context", cmd.CommandField)}
	}
	if cmd.HasDataSet() {
		// Discard the data set that follows, then answer.
		a.cur = &incoming{start: a.cmdStart, ctxID: ctxID, cmd: cmd, status: st}
		return
	}
	a.respond(ctxID, cmd, *st)
}

func (a *association) checkStore(cmd *Command, pc acceptedContext) *Status {
	for _, req := range []struct {
		tag  uint16
		name string
	}{{tagMessageID, "MessageID (0000,0110)"}, {tagAffectedSOPClassUID, "AffectedSOPClassUID (0000,0002)"}, {tagAffectedSOPInstanceUID, "AffectedSOPInstanceUID (0000,1000)"}, {tagPriority, "Priority (0000,0700)"}, {tagCommandDataSetType, "CommandDataSetType (0000,0800)"}} {
		if !cmd.Has(req.tag) {
			return &Status{StatusCannotUnderstand, "C-STORE-RQ lacks " + req.name}
		}
	}
	if !cmd.HasDataSet() {
		return &Status{StatusCannotUnderstand, "C-STORE-RQ announces no data set"}
	}
	if cmd.AffectedSOPClassUID != pc.abstract {
		return &Status{StatusSOPClassNotSupported, "AffectedSOPClassUID differs from the context's abstract syntax"}
	}
	if a.s.StoreHandler == nil {
		return &Status{StatusSOPClassNotSupported, "storage not configured"}
	}
	return nil
}

func (a *association) startStore(ctxID byte, pc acceptedContext, cmd *Command) {
	a.store = &incoming{start: a.cmdStart, ctxID: ctxID, cmd: cmd, req: &StoreRequest{
		Association: &a.info, MessageID: cmd.MessageID, Priority: cmd.Priority,
		SOPClassUID: cmd.AffectedSOPClassUID, SOPInstanceUID: cmd.AffectedSOPInstanceUID, TransferSyntaxUID: pc.transferSyntax,
		MoveOriginatorAETitle: cmd.MoveOriginatorAETitle, MoveOriginatorMessageID: cmd.MoveOriginatorMessageID,
	}}
}

// runStore runs the store handler of in, in the association's goroutine: the handler's
// reads take the data set's PDVs from pdvs (what followed the command in its PDU) and
// then from the PDUs that follow, read as the handler asks for them (storeReader), with
// the checks pdata makes; nothing passes through another goroutine. It returns the
// PDVs still to handle: those after the data set's last fragment in the PDU read last,
// or, when the handler returned before the data set ended, the rest of it, which pdata
// then discards before it answers with the handler's status. A PDU other than P-DATA-TF,
// a PDV that breaks the protocol or a failed read ends the data set early: the handler's
// read fails, and once it has returned the association handles what came, as serve and
// pdata would have.
func (a *association) runStore(in *incoming, pdvs []PDV) []PDV {
	r := &storeReader{a: a, ctxID: in.ctxID, pdvs: pdvs}
	st := Status{Code: StatusOutOfResources, ErrorComment: "internal error"}
	func() {
		defer func() {
			if rec := recover(); rec != nil {
				a.log.Error("dimse: store handler panic; association will be aborted", "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
				a.panicked = true
			}
		}()
		st = a.s.StoreHandler.HandleStore(a.ctx, in.req, r)
	}()
	switch {
	case r.then != nil:
		// The data set did not end: what interrupted it is handled now (no response).
		r.then()
		return nil
	case !r.last:
		// The handler returned early: discard the rest of the data set, then answer.
		in.status = &st
		a.cur = in
		return r.pdvs
	}
	a.respond(in.ctxID, in.cmd, st)
	if a.panicked {
		a.fire(Evt15, nil)
		return nil
	}
	return r.pdvs
}

// storeReader is the data set of a C-STORE, read PDV by PDV from the connection as the
// handler reads it (runStore).
type storeReader struct {
	a     *association
	ctxID byte
	pdvs  []PDV  // unread PDVs of the PDU read last
	cur   []byte // unread bytes of the current PDV
	last  bool   // the data set's last fragment has been taken
	err   error  // why the data set ended early
	then  func() // what the association does about it once the handler has returned
}

func (r *storeReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		switch {
		case r.last:
			return 0, io.EOF
		case r.err != nil:
			return 0, r.err
		case len(r.pdvs) == 0:
			r.next()
			continue
		}
		v := r.pdvs[0]
		a := r.a
		if _, ok := a.contexts[v.ContextID]; !ok {
			r.stop(func() {
				a.protocolAbort(AbortReasonInvalidParamValue, "PDV for presentation context %d, which was not accepted", v.ContextID)
			})
			continue
		}
		if v.Command {
			r.stop(func() { a.protocolAbort(AbortReasonUnexpectedParam, "command PDV while a data set is still arriving") })
			continue
		}
		if v.ContextID != r.ctxID {
			r.stop(func() {
				a.protocolAbort(AbortReasonUnexpectedParam, "data set PDV on context %d without a command announcing it", v.ContextID)
			})
			continue
		}
		r.pdvs = r.pdvs[1:]
		r.cur, r.last = v.Data, v.Last
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// stop ends the data set early: the handler's reads fail, and then runs once the
// handler has returned.
func (r *storeReader) stop(then func()) {
	r.err, r.then = errAssociationAborted, then
}

// next reads the next PDU for the data set, as serve would.
func (r *storeReader) next() {
	a := r.a
	if a.aborting.Load() {
		r.stop(func() {}) // serve handles the abort
		return
	}
	a.setReadDeadline()
	p, buf, err := ReadPDU(a.rd, a.s.maxPDU(), a.buf)
	a.buf = buf
	if err != nil {
		r.stop(func() { a.readFailed(err) })
		return
	}
	pd, ok := p.(*PDataTF)
	if !ok {
		r.stop(func() { a.fire(pduEvent(p), p) })
		return
	}
	r.pdvs = pd.PDVs
}

// respond sends the response to a request, on the request's context.
func (a *association) respond(ctxID byte, rq *Command, st Status) {
	a.observe(rq.CommandField, a.cmdStart, st.Code)
	class, inst := rq.AffectedSOPClassUID, rq.AffectedSOPInstanceUID
	if class == "" { // N-ACTION names its SOP class and instance as Requested
		class, inst = rq.RequestedSOPClassUID, rq.RequestedSOPInstanceUID
	}
	rsp := &Command{
		CommandField:              rq.CommandField | 0x8000,
		MessageIDBeingRespondedTo: rq.MessageID,
		AffectedSOPClassUID:       class,
		AffectedSOPInstanceUID:    inst,
		EventTypeID:               rq.EventTypeID,
		ActionTypeID:              rq.ActionTypeID,
		CommandDataSetType:        NoDataSet,
		Status:                    st.Code,
	}
	if st.Code != StatusSuccess {
		rsp.ErrorComment = st.ErrorComment
	}
	a.sendMessage(ctxID, rsp.Encode(), nil)
}

// observe reports an answered operation to Server.Observe.
func (a *association) observe(field uint16, start time.Time, code uint16) {
	if a.s.Observe != nil && !start.IsZero() {
		a.s.Observe(OperationName(field), time.Since(start), code)
	}
}

// sendMessage sends a command (and optional data set) as P-DATA-TF PDUs that respect
// the peer's maximum PDU length.
func (a *association) sendMessage(ctxID byte, cmd []byte, data []byte) {
	if err := a.writeMessage(ctxID, cmd, data); err != nil {
		a.log.Debug("dimse: write failed", "err", err)
	}
}

// writeMessage sends a command and optional data set as one unit (no interleaving).
func (a *association) writeMessage(ctxID byte, cmd []byte, data []byte) error {
	a.wmu.Lock()
	defer a.wmu.Unlock()
	p, err := newPDVWriter(a.conn, ctxID, a.peerMax)
	if err != nil {
		return err
	}
	defer p.release()
	if err := p.queue(true, true, cmd); err != nil {
		return err
	}
	if data != nil {
		if err := p.queue(false, true, data); err != nil {
			return err
		}
	}
	return p.flush()
}

// startOp registers a cancellable operation (C-FIND, C-MOVE, C-GET) and runs body in
// its own goroutine, so that the association keeps reading (C-CANCEL, and the responses
// to C-GET sub-operations) meanwhile. body's ctx ends on C-CANCEL or when the
// association ends.
func (a *association) startOp(msgID uint16, body func(ctx context.Context, f *findOp)) {
	ctx, cancel := context.WithCancel(a.ctx)
	f := &findOp{msgID: msgID, cancel: cancel, done: make(chan struct{})}
	a.find = f
	go func() {
		defer close(f.done)
		defer cancel()
		body(ctx, f)
	}()
}

// guard runs a handler, turning a panic into an abort of this association only.
func (a *association) guard(what string, fn func()) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("dimse: "+what+" handler panic", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			a.conn.Close()
		}
	}()
	fn()
}

// startFind runs the find handler, sending matches as pending responses.
func (a *association) startFind(in *incoming, pc acceptedContext) {
	cmd := in.cmd
	req := &FindRequest{Association: &a.info, MessageID: cmd.MessageID, Priority: cmd.Priority, SOPClassUID: cmd.AffectedSOPClassUID, TransferSyntaxUID: pc.transferSyntax, Identifier: in.identifier}
	rsp := func(code uint16, comment string, data []byte) error {
		c := &Command{CommandField: CFindRSP, MessageIDBeingRespondedTo: cmd.MessageID, AffectedSOPClassUID: cmd.AffectedSOPClassUID, CommandDataSetType: NoDataSet, Status: code, ErrorComment: comment}
		if data != nil {
			c.CommandDataSetType = DataSetPresent
		}
		return a.writeMessage(in.ctxID, c.Encode(), data)
	}
	a.startOp(cmd.MessageID, func(ctx context.Context, f *findOp) {
		st := Status{Code: StatusProcessingFailure, ErrorComment: "internal error"}
		a.guard("find", func() {
			st = a.s.FindHandler.HandleFind(ctx, req, func(id []byte, warn bool) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				code := StatusPending
				if warn {
					code = StatusPendingWarning
				}
				return rsp(code, "", id)
			})
		})
		if f.cancelled.Load() {
			st = Status{Code: StatusCancel}
		} else if a.ctx.Err() != nil {
			return // the association is gone
		}
		if st.Code == StatusSuccess || st.Code == StatusCancel {
			st.ErrorComment = ""
		}
		rsp(st.Code, st.ErrorComment, nil)
		a.observe(CFindRQ, in.start, st.Code)
	})
}
