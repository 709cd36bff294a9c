package dimse

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Storage Commitment Push Model (PS3.4 Annex J).
const (
	StorageCommitmentSOPClass    = "1.2.840.10008.1.20.1"
	StorageCommitmentSOPInstance = "1.2.840.10008.1.20.1.1"

	// Event types of the N-EVENT-REPORT (PS3.4 J.3.3).
	CommitmentSucceeded     uint16 = 1 // every instance committed
	CommitmentFailuresExist uint16 = 2 // some instances could not be committed

	// ServiceCommit is the peer service name of storage commitment.
	ServiceCommit = "commit"

	// StatusNoSuchAction is N-ACTION's "no such action type" (PS3.7 C.5.23).
	StatusNoSuchAction uint16 = 0x0123
)

// CommitRequest is a storage commitment N-ACTION-RQ as handlers see it.
type CommitRequest struct {
	Association *AssociationInfo
	// TransferSyntaxUID encodes ActionInformation and the event information to return.
	TransferSyntaxUID string
	// ActionInformation is the N-ACTION data set: TransactionUID (0008,1195) and
	// ReferencedSOPSequence (0008,1199).
	ActionInformation []byte
}

// CommitHandler answers storage commitment requests. HandleCommit checks each
// referenced instance and returns the N-ACTION status and, when it is Success, the
// N-EVENT-REPORT to send: its event type (CommitmentSucceeded or
// CommitmentFailuresExist) and event information (TransactionUID,
// ReferencedSOPSequence of the committed instances, FailedSOPSequence with a
// FailureReason for the others) encoded in req.TransferSyntaxUID.
type CommitHandler interface {
	HandleCommit(ctx context.Context, req *CommitRequest) (st Status, eventType uint16, eventInfo []byte)
}

// EventReport is a storage commitment result received by an SCU.
type EventReport struct {
	Association *AssociationInfo
	EventType   uint16
	// TransferSyntaxUID encodes EventInformation.
	TransferSyntaxUID string
	EventInformation  []byte
}

// EventReportHandler receives storage commitment results sent to this AE on a new
// association (Lumen as commitment SCU, or a test peer).
type EventReportHandler interface {
	HandleEventReport(ctx context.Context, r *EventReport) Status
}

// pendingReport is an N-EVENT-REPORT sent on an association, awaiting its response.
type pendingReport struct {
	id uint16
	ch chan Status
}

// startCommit answers an N-ACTION-RQ, then sends the N-EVENT-REPORT: on the same
// association while it is open, else over a new association to the requestor's
// configured address (Policy.Peers).
func (a *association) startCommit(in *incoming, pc acceptedContext) {
	cmd := in.cmd
	req := &CommitRequest{Association: &a.info, TransferSyntaxUID: pc.transferSyntax, ActionInformation: in.identifier}
	st, eventType, info := a.s.CommitHandler.HandleCommit(a.ctx, req)
	rsp := &Command{CommandField: NActionRSP, MessageIDBeingRespondedTo: cmd.MessageID, AffectedSOPClassUID: StorageCommitmentSOPClass,
		AffectedSOPInstanceUID: StorageCommitmentSOPInstance, ActionTypeID: cmd.ActionTypeID, CommandDataSetType: NoDataSet, Status: st.Code}
	if st.Code != StatusSuccess {
		rsp.ErrorComment = st.ErrorComment
	}
	a.sendMessage(in.ctxID, rsp.Encode(), nil)
	a.observe(NActionRQ, in.start, st.Code)
	if st.Code != StatusSuccess {
		return
	}
	ctxID, ts, ae := in.ctxID, pc.transferSyntax, a.info.CallingAETitle
	s := a.s
	go func() {
		if a.sendReport(ctxID, eventType, info) {
			return
		}
		s.reportLater(ae, ts, eventType, info)
	}()
}

// sendReport sends the N-EVENT-REPORT on this association and waits for its response;
// false when the association ended first.
func (a *association) sendReport(ctxID byte, eventType uint16, info []byte) bool {
	id := uint16(a.subMsgID.Add(1))
	ch := make(chan Status, 1)
	a.reportMu.Lock()
	a.reports = append(a.reports, pendingReport{id, ch})
	a.reportMu.Unlock()
	rq := &Command{CommandField: NEventReportRQ, MessageID: id, AffectedSOPClassUID: StorageCommitmentSOPClass,
		AffectedSOPInstanceUID: StorageCommitmentSOPInstance, EventTypeID: eventType, CommandDataSetType: DataSetPresent}
	if a.ctx.Err() != nil || a.writeMessage(ctxID, rq.Encode(), info) != nil {
		return false
	}
	if a.s.reportSent != nil {
		a.s.reportSent()
	}
	t := time.NewTimer(a.s.artim())
	defer t.Stop()
	answered := func(st Status) bool {
		if st.Code != StatusSuccess {
			a.log.Warn("dimse: storage commitment report refused by the requestor", "status", fmt.Sprintf("0x%04X", st.Code))
		}
		return true
	}
	select {
	case st := <-ch:
		return answered(st)
	case <-a.ctx.Done():
	case <-t.C:
	}
	// A requestor that answers and releases at once makes the response and the end of
	// the association arrive together; select picks among ready cases at random, so
	// look for the response once more before reporting again on a new association.
	select {
	case st := <-ch:
		return answered(st)
	default:
		return false
	}
}

// deliverReportResponse hands an N-EVENT-REPORT-RSP to the report awaiting it.
func (a *association) deliverReportResponse(cmd *Command) {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	for i, r := range a.reports {
		if r.id == cmd.MessageIDBeingRespondedTo {
			r.ch <- Status{Code: cmd.Status, ErrorComment: cmd.ErrorComment}
			a.reports = append(a.reports[:i], a.reports[i+1:]...)
			return
		}
	}
}

// reportLater sends a storage commitment result over a new association to the
// requestor's configured address, retrying a few times.
func (s *Server) reportLater(ae, ts string, eventType uint16, info []byte) {
	p := s.Policy.peer(ae)
	if p == nil || p.Host == "" || p.Port == 0 {
		s.log().Warn("dimse: storage commitment result cannot be delivered: the requestor is not in dimse.peers with host and port", "calling_ae", ae)
		return
	}
	addr := net.JoinHostPort(p.Host, strconv.Itoa(p.Port))
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 2 * time.Second)
		}
		if err = s.dialReport(addr, ae, ts, eventType, info); err == nil {
			return
		}
	}
	s.log().Warn("dimse: storage commitment result not delivered", "calling_ae", ae, "addr", addr, "err", err)
}

func (s *Server) dialReport(addr, ae, ts string, eventType uint16, info []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.artim())
	defer cancel()
	tss := []string{ts}
	if ts != ExplicitVRLittleEndian && ts != ImplicitVRLittleEndian {
		tss = []string{ExplicitVRLittleEndian}
	}
	c, err := Dial(ctx, addr, DialConfig{CallingAETitle: s.aeTitle(), CalledAETitle: ae, Timeout: s.artim(),
		Contexts: []ProposedContext{{AbstractSyntax: StorageCommitmentSOPClass, TransferSyntaxes: tss}},
		Roles:    []RoleSelection{{SOPClassUID: StorageCommitmentSOPClass, SCU: false, SCP: true}}})
	if err != nil {
		return err
	}
	st, err := c.EventReport(ctx, StorageCommitmentSOPClass, StorageCommitmentSOPInstance, eventType, ts, info)
	if err != nil {
		c.Abort()
		return err
	}
	c.Release()
	if st.Code != StatusSuccess {
		return fmt.Errorf("N-EVENT-REPORT status 0x%04X %s", st.Code, st.ErrorComment)
	}
	return nil
}

// EventReport sends an N-EVENT-REPORT-RQ with event information encoded in ts (which
// must have been accepted for sopClass) and returns the response status.
func (c *Client) EventReport(ctx context.Context, sopClass, sopInstance string, eventType uint16, ts string, info []byte) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.context(sopClass, ts)
	if !ok {
		if id, ok = c.context(sopClass, ""); !ok {
			return Status{}, ErrNoContext
		}
	}
	rq := &Command{CommandField: NEventReportRQ, MessageID: c.nextID(), AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sopInstance,
		EventTypeID: eventType, CommandDataSetType: DataSetPresent}
	if err := c.sendCommand(id, rq.Encode()); err != nil {
		return Status{}, err
	}
	if err := c.sendData(ctx, id, bytes.NewReader(info)); err != nil {
		return Status{}, err
	}
	return c.readResponse(ctx, rq.MessageID)
}

// Commit sends a storage commitment N-ACTION-RQ (action type 1) with the action
// information (TransactionUID and ReferencedSOPSequence, encoded in the accepted
// transfer syntax, see Accepted) and returns the N-ACTION-RSP status.
func (c *Client) Commit(ctx context.Context, actionInfo []byte) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.context(StorageCommitmentSOPClass, "")
	if !ok {
		return Status{}, ErrNoContext
	}
	rq := &Command{CommandField: NActionRQ, MessageID: c.nextID(), RequestedSOPClassUID: StorageCommitmentSOPClass,
		RequestedSOPInstanceUID: StorageCommitmentSOPInstance, ActionTypeID: 1, CommandDataSetType: DataSetPresent}
	if err := c.sendCommand(id, rq.Encode()); err != nil {
		return Status{}, err
	}
	if err := c.sendData(ctx, id, bytes.NewReader(actionInfo)); err != nil {
		return Status{}, err
	}
	return c.readResponse(ctx, rq.MessageID)
}

// WaitEventReport reads the next N-EVENT-REPORT-RQ on this association (a storage
// commitment result sent on the requestor's association), answers it with Success and
// returns it.
func (c *Client) WaitEventReport(ctx context.Context) (*EventReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var cmdBuf, dataBuf []byte
	var rq *Command
	var ctxID byte
	for {
		pd, err := c.readPData(ctx, "N-EVENT-REPORT-RQ")
		if err != nil {
			return nil, err
		}
		for _, v := range pd.PDVs {
			if v.Command {
				cmdBuf = append(cmdBuf, v.Data...)
				if !v.Last {
					continue
				}
				cmd, err := DecodeCommand(cmdBuf)
				cmdBuf = nil
				if err != nil {
					return nil, err
				}
				if cmd.CommandField == NEventReportRQ {
					rq, ctxID = cmd, v.ContextID
				}
				continue
			}
			if rq == nil {
				continue
			}
			dataBuf = append(dataBuf, v.Data...)
			if !v.Last {
				continue
			}
			rsp := &Command{CommandField: NEventReportRSP, MessageIDBeingRespondedTo: rq.MessageID, AffectedSOPClassUID: rq.AffectedSOPClassUID,
				AffectedSOPInstanceUID: rq.AffectedSOPInstanceUID, EventTypeID: rq.EventTypeID, CommandDataSetType: NoDataSet, Status: StatusSuccess}
			if err := c.sendCommand(ctxID, rsp.Encode()); err != nil {
				return nil, err
			}
			return &EventReport{EventType: rq.EventTypeID, TransferSyntaxUID: c.contexts[ctxID].transferSyntax, EventInformation: dataBuf}, nil
		}
	}
}

// receiveReport hands a received N-EVENT-REPORT to the handler and answers it.
func (a *association) receiveReport(in *incoming, pc acceptedContext) {
	st := a.s.EventReportHandler.HandleEventReport(a.ctx, &EventReport{Association: &a.info, EventType: in.cmd.EventTypeID,
		TransferSyntaxUID: pc.transferSyntax, EventInformation: in.identifier})
	a.respond(in.ctxID, in.cmd, st)
}
