package dimse

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ProposedContext is a presentation context a requestor proposes.
type ProposedContext struct {
	AbstractSyntax   string
	TransferSyntaxes []string
}

// DialConfig configures an outgoing association.
type DialConfig struct {
	CallingAETitle string // default "LUMEN"
	CalledAETitle  string // default "ANY-SCP"
	Contexts       []ProposedContext
	// MaxPDULength this side receives (default 256 KiB).
	MaxPDULength uint32
	// Timeout bounds connection set-up, association negotiation (ARTIM) and each
	// response wait (default 30 s).
	Timeout time.Duration
	// TLS, when set, secures the association (PS3.15 Annex B): the connection is
	// wrapped and the handshake completed before the A-ASSOCIATE-RQ.
	TLS *tls.Config
	// Roles are SCP/SCU role selections to propose (PS3.7 D.3.3.4), for example the SCP
	// role for storage commitment reports sent on a new association.
	Roles []RoleSelection
	// LocalAddr, when set, is the local address to connect from (a multi-homed host).
	LocalAddr net.Addr
}

// RejectedError is an A-ASSOCIATE-RJ received by a requestor.
type RejectedError struct{ Result, Source, Reason byte }

// Error describes the rejection as PS3.8 §9.3.4 names it.
func (e *RejectedError) Error() string {
	kind := "permanent"
	if e.Result == RJTransient {
		kind = "transient"
	}
	why := fmt.Sprintf("source %d reason %d", e.Source, e.Reason)
	switch {
	case e.Source == RJSourceServiceUser && e.Reason == RJReasonCalledAENotRecognized:
		why = "called AE title not recognized"
	case e.Source == RJSourceServiceUser && e.Reason == RJReasonCallingAENotRecognized:
		why = "calling AE title not recognized"
	case e.Source == RJSourceServiceUser && e.Reason == RJReasonApplicationContextNotSupported:
		why = "application context not supported"
	case e.Source == RJSourceServiceProviderPresentation && e.Reason == RJReasonLocalLimitExceeded:
		why = "local limit exceeded"
	case e.Source == RJSourceServiceProviderPresentation && e.Reason == RJReasonTemporaryCongestion:
		why = "temporary congestion"
	}
	return "dimse: association rejected (" + kind + "): " + why
}

// AbortedError is an A-ABORT received from the peer.
type AbortedError struct{ Source, Reason byte }

// Error describes the abort.
func (e *AbortedError) Error() string {
	return fmt.Sprintf("dimse: association aborted by peer (source %d, reason %d)", e.Source, e.Reason)
}

// minPeerPDULength is the smallest maximum PDU length a peer may announce.
const minPeerPDULength = 512

// ErrNoContext means no accepted presentation context fits the request.
var ErrNoContext = errors.New("dimse: no accepted presentation context for this SOP class and transfer syntax")

// Client is an association this side requested. Methods are safe for concurrent use
// but operations run one at a time (asynchronous operations window 1).
type Client struct {
	conn     net.Conn
	rd       io.Reader // PDUs are read from rd (pduReader)
	cfg      DialConfig
	state    State
	contexts map[byte]acceptedContext
	peerMax  uint32
	buf      []byte
	msgID    uint16
	mu       sync.Mutex
	// AC is the A-ASSOCIATE-AC received.
	AC *AAssociate
}

func (c *DialConfig) timeout() time.Duration {
	if c.Timeout <= 0 {
		return 30 * time.Second
	}
	return c.Timeout
}

// Dial opens an association with the SCP at addr (host:port).
func Dial(ctx context.Context, addr string, cfg DialConfig) (*Client, error) {
	if cfg.CallingAETitle == "" {
		cfg.CallingAETitle = DefaultAETitle
	}
	if cfg.CalledAETitle == "" {
		cfg.CalledAETitle = "ANY-SCP"
	}
	if cfg.MaxPDULength == 0 {
		cfg.MaxPDULength = DefaultMaxPDULength
	}
	c := &Client{cfg: cfg, state: Sta1}
	c.transition(Evt1) // AE-1: issue transport connect
	d := net.Dialer{Timeout: cfg.timeout(), LocalAddr: cfg.LocalAddr}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		c.transition(Evt17)
		return nil, fmt.Errorf("dimse: dial %s: %w", addr, err)
	}
	if cfg.TLS != nil {
		tc := tls.Client(conn, cfg.TLS)
		hctx, cancel := context.WithTimeout(ctx, cfg.timeout())
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			conn.Close()
			c.transition(Evt17)
			return nil, fmt.Errorf("dimse: TLS with %s: %w", addr, err)
		}
		conn = tc
	}
	c.conn, c.rd = conn, pduReader(conn)
	c.transition(Evt2) // AE-2: send A-ASSOCIATE-RQ
	rq := &AAssociate{ProtocolVersion: 1, CalledAETitle: cfg.CalledAETitle, CallingAETitle: cfg.CallingAETitle, ApplicationContext: applicationContextName}
	for i, pc := range cfg.Contexts {
		rq.PresentationContexts = append(rq.PresentationContexts, PresentationContext{ID: byte(2*i + 1), AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
	}
	rq.UserInformation = UserInformation{MaxPDULength: cfg.MaxPDULength, ImplementationClassUID: DefaultImplementationClassUID, ImplementationVersionName: DefaultImplementationVersionName, Roles: cfg.Roles}
	if err := c.write(rq); err != nil {
		conn.Close()
		return nil, err
	}
	conn.SetReadDeadline(time.Now().Add(cfg.timeout()))
	p, _, err := ReadPDU(c.rd, cfg.MaxPDULength, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dimse: waiting for A-ASSOCIATE-AC: %w", err)
	}
	switch v := p.(type) {
	case *AAssociate:
		if !v.AC {
			break
		}
		c.transition(Evt3)
		c.AC = v
		c.peerMax = v.UserInformation.MaxPDULength
		if c.peerMax != 0 && c.peerMax < minPeerPDULength {
			c.write(&AAbort{Source: AbortSourceServiceUser})
			conn.Close()
			return nil, fmt.Errorf("dimse: peer's maximum PDU length %d is below %d bytes", c.peerMax, minPeerPDULength)
		}
		c.contexts = map[byte]acceptedContext{}
		for _, pc := range v.PresentationContexts {
			if pc.Result != ResultAcceptance || len(pc.TransferSyntaxes) == 0 {
				continue
			}
			for _, q := range rq.PresentationContexts {
				if q.ID == pc.ID {
					c.contexts[pc.ID] = acceptedContext{abstract: q.AbstractSyntax, transferSyntax: pc.TransferSyntaxes[0]}
				}
			}
		}
		return c, nil
	case *AAssociateRJ:
		c.transition(Evt4)
		conn.Close()
		return nil, &RejectedError{v.Result, v.Source, v.Reason}
	case *AAbort:
		conn.Close()
		return nil, &AbortedError{v.Source, v.Reason}
	}
	c.write(&AAbort{Source: AbortSourceServiceProvider, Reason: AbortReasonUnexpectedPDU})
	conn.Close()
	return nil, fmt.Errorf("%w: unexpected PDU type 0x%02x during association set-up", ErrPDU, p.PDUType())
}

func (c *Client) transition(e Event) {
	if tr, ok := Lookup(c.state, e); ok {
		c.state = tr.Next
	}
}

func (c *Client) write(p PDU) error {
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.conn.Write(EncodePDU(p))
	return err
}

// Accepted reports the transfer syntax accepted for an abstract syntax (the first
// accepted context), or "".
func (c *Client) Accepted(abstract string) []string {
	var out []string
	for _, pc := range c.contexts {
		if pc.abstract == abstract {
			out = append(out, pc.transferSyntax)
		}
	}
	return out
}

func (c *Client) context(abstract, ts string) (byte, bool) {
	for id, pc := range c.contexts {
		if pc.abstract == abstract && (ts == "" || pc.transferSyntax == ts) {
			return id, true
		}
	}
	return 0, false
}

func (c *Client) nextID() uint16 {
	c.msgID++
	return c.msgID
}

// Echo sends a C-ECHO-RQ and returns the response status.
func (c *Client) Echo(ctx context.Context) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.context(VerificationSOPClass, "")
	if !ok {
		return Status{}, ErrNoContext
	}
	rq := &Command{CommandField: CEchoRQ, MessageID: c.nextID(), AffectedSOPClassUID: VerificationSOPClass, CommandDataSetType: NoDataSet}
	if err := c.sendCommand(id, rq.Encode()); err != nil {
		return Status{}, err
	}
	return c.readResponse(ctx, rq.MessageID)
}

// Store sends a C-STORE-RQ whose data set (encoded in ts, without meta information) is
// streamed from data, and returns the response status.
func (c *Client) Store(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader) (Status, error) {
	return c.StoreWithOriginator(ctx, sopClass, sopInstance, ts, data, "", 0)
}

// StoreWithOriginator is Store for a C-MOVE sub-operation: the request carries the
// Move Originator AE Title and Message ID (PS3.7 9.1.1.1).
func (c *Client) StoreWithOriginator(ctx context.Context, sopClass, sopInstance, ts string, data io.Reader, originAE string, originID uint16) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.context(sopClass, ts)
	if !ok {
		return Status{}, ErrNoContext
	}
	rq := &Command{CommandField: CStoreRQ, MessageID: c.nextID(), AffectedSOPClassUID: sopClass, AffectedSOPInstanceUID: sopInstance, CommandDataSetType: DataSetPresent,
		MoveOriginatorAETitle: originAE, MoveOriginatorMessageID: originID}
	if err := c.sendMessage(ctx, id, rq.Encode(), data); err != nil {
		return Status{}, err
	}
	return c.readResponse(ctx, rq.MessageID)
}

// sendCommand sends a command set as PDVs within the peer's maximum PDU length.
func (c *Client) sendCommand(id byte, cmd []byte) error {
	p, err := newPDVWriter(c.conn, id, c.peerMax)
	if err == nil {
		err = p.bytes(true, cmd)
		p.release()
	}
	if err != nil {
		return fmt.Errorf("dimse: send command: %w", err)
	}
	return nil
}

// sendMessage sends a command set and then streams r as data set PDVs, flagging the
// last one (pdvWriter.message); on failure (or when ctx ends) the association is
// aborted, since the peer waits for the rest. A nil cmd sends the data set alone.
func (c *Client) sendMessage(ctx context.Context, id byte, cmd []byte, r io.Reader) error {
	p, err := newPDVWriter(c.conn, id, c.peerMax)
	if err == nil {
		err = p.message(ctx, cmd, r)
		p.release()
	}
	if err != nil {
		c.abortLocked()
		if errors.Is(err, ctx.Err()) {
			return err
		}
		return fmt.Errorf("dimse: send message: %w", err)
	}
	return nil
}

// sendData streams r as data set PDVs after a command sent alone (sendMessage).
func (c *Client) sendData(ctx context.Context, id byte, r io.Reader) error {
	return c.sendMessage(ctx, id, nil, r)
}

// readPData reads the next PDU, which must be a P-DATA-TF: an A-ABORT ends the
// association with an *AbortedError, anything else aborts it.
func (c *Client) readPData(ctx context.Context, waitingFor string) (*PDataTF, error) {
	deadline := time.Now().Add(c.cfg.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.conn.SetReadDeadline(deadline)
	p, buf, err := ReadPDU(c.rd, c.cfg.MaxPDULength, c.buf)
	c.buf = buf
	if err != nil {
		return nil, fmt.Errorf("dimse: waiting for %s: %w", waitingFor, err)
	}
	switch v := p.(type) {
	case *PDataTF:
		return v, nil
	case *AAbort:
		c.state = Sta1
		c.conn.Close()
		return nil, &AbortedError{v.Source, v.Reason}
	}
	c.abortLocked()
	return nil, fmt.Errorf("%w: unexpected PDU type 0x%02x while waiting for %s", ErrPDU, p.PDUType(), waitingFor)
}

// readResponse reads PDUs until the response to msgID arrives.
func (c *Client) readResponse(ctx context.Context, msgID uint16) (Status, error) {
	var cmdBuf []byte
	for {
		pd, err := c.readPData(ctx, "a response")
		if err != nil {
			return Status{}, err
		}
		for _, pdv := range pd.PDVs {
			if !pdv.Command {
				continue // a data set we do not expect for these operations
			}
			cmdBuf = append(cmdBuf, pdv.Data...)
			if !pdv.Last {
				continue
			}
			rsp, err := DecodeCommand(cmdBuf)
			cmdBuf = nil
			if err != nil {
				return Status{}, err
			}
			if rsp.MessageIDBeingRespondedTo == msgID {
				return Status{Code: rsp.Status, ErrorComment: rsp.ErrorComment}, nil
			}
		}
	}
}

// Release releases the association (A-RELEASE-RQ, then waits for -RP) and closes it.
func (c *Client) Release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.conn.Close()
	c.transition(Evt11)
	if err := c.write(&AReleaseRQ{}); err != nil {
		return err
	}
	c.conn.SetReadDeadline(time.Now().Add(c.cfg.timeout()))
	for {
		p, _, err := ReadPDU(c.rd, c.cfg.MaxPDULength, nil)
		if err != nil {
			return fmt.Errorf("dimse: waiting for A-RELEASE-RP: %w", err)
		}
		switch p.(type) {
		case *AReleaseRP:
			c.transition(Evt13)
			return nil
		case *AAbort:
			return &AbortedError{}
		}
	}
}

// Abort sends an A-ABORT and closes the connection.
func (c *Client) Abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.abortLocked()
}

func (c *Client) abortLocked() {
	if c.state == Sta1 {
		return
	}
	c.write(&AAbort{Source: AbortSourceServiceUser})
	c.state = Sta1
	c.conn.Close()
}

// Find sends a C-FIND-RQ with the identifier (encoded in the context's transfer
// syntax, see Accepted) on the information model's context and calls match for each
// pending response's identifier. If match returns false, a C-CANCEL-RQ is sent and the
// remaining responses are drained. It returns the final status.
func (c *Client) Find(ctx context.Context, model string, identifier []byte, match func(identifier []byte) bool) (Status, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.context(model, "")
	if !ok {
		return Status{}, ErrNoContext
	}
	rq := &Command{CommandField: CFindRQ, MessageID: c.nextID(), AffectedSOPClassUID: model, CommandDataSetType: DataSetPresent}
	if err := c.sendMessage(ctx, id, rq.Encode(), bytes.NewReader(identifier)); err != nil {
		return Status{}, err
	}
	var cmdBuf, dataBuf []byte
	var pending *Command
	cancelled := false
	for {
		pd, err := c.readPData(ctx, "C-FIND-RSP")
		if err != nil {
			return Status{}, err
		}
		for _, v := range pd.PDVs {
			if v.Command {
				cmdBuf = append(cmdBuf, v.Data...)
				if !v.Last {
					continue
				}
				rsp, err := DecodeCommand(cmdBuf)
				cmdBuf = nil
				if err != nil {
					return Status{}, err
				}
				if rsp.Status == StatusPending || rsp.Status == StatusPendingWarning {
					if rsp.HasDataSet() {
						pending = rsp
					}
					continue
				}
				return Status{Code: rsp.Status, ErrorComment: rsp.ErrorComment}, nil
			}
			if pending == nil {
				continue
			}
			dataBuf = append(dataBuf, v.Data...)
			if !v.Last {
				continue
			}
			data := dataBuf
			dataBuf, pending = nil, nil
			if !cancelled && (ctx.Err() != nil || !match(data)) {
				cancelled = true
				cancel := &Command{CommandField: CCancelRQ, MessageIDBeingRespondedTo: rq.MessageID, CommandDataSetType: NoDataSet}
				if err := c.sendCommand(id, cancel.Encode()); err != nil {
					return Status{}, err
				}
			}
		}
	}
}

// Move sends a C-MOVE-RQ asking the SCP to send what identifier names (encoded in the
// context's transfer syntax) to the destination AE, and calls pending with the counts
// of each pending response; when pending returns false, a C-CANCEL-RQ is sent and the
// remaining responses are read. It returns the final status (with its ErrorComment) and
// counts. A data set of the final response (the failed SOP Instance UID list) is read
// and discarded.
func (c *Client) Move(ctx context.Context, model, destination string, identifier []byte, pending func(SubOperations) bool) (Status, SubOperations, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.context(model, "")
	if !ok {
		return Status{}, SubOperations{}, ErrNoContext
	}
	rq := &Command{CommandField: CMoveRQ, MessageID: c.nextID(), AffectedSOPClassUID: model, MoveDestination: destination, CommandDataSetType: DataSetPresent}
	if err := c.sendMessage(ctx, id, rq.Encode(), bytes.NewReader(identifier)); err != nil {
		return Status{}, SubOperations{}, err
	}
	var cmdBuf []byte
	var final *Command
	cancelled := false
	for {
		pd, err := c.readPData(ctx, "C-MOVE-RSP")
		if err != nil {
			return Status{}, SubOperations{}, err
		}
		for _, v := range pd.PDVs {
			if !v.Command {
				if final != nil && v.Last {
					return moveResult(final)
				}
				continue
			}
			cmdBuf = append(cmdBuf, v.Data...)
			if !v.Last {
				continue
			}
			rsp, err := DecodeCommand(cmdBuf)
			cmdBuf = nil
			if err != nil {
				return Status{}, SubOperations{}, err
			}
			if rsp.Status != StatusPending {
				if rsp.HasDataSet() {
					final = rsp // its data set follows
					continue
				}
				return moveResult(rsp)
			}
			n := SubOperations{Remaining: int(rsp.NumberOfRemainingSuboperations), Completed: int(rsp.NumberOfCompletedSuboperations),
				Failed: int(rsp.NumberOfFailedSuboperations), Warning: int(rsp.NumberOfWarningSuboperations)}
			if !cancelled && (ctx.Err() != nil || !pending(n)) {
				cancelled = true
				cancel := &Command{CommandField: CCancelRQ, MessageIDBeingRespondedTo: rq.MessageID, CommandDataSetType: NoDataSet}
				if err := c.sendCommand(id, cancel.Encode()); err != nil {
					return Status{}, SubOperations{}, err
				}
			}
		}
	}
}

func moveResult(rsp *Command) (Status, SubOperations, error) {
	return Status{Code: rsp.Status, ErrorComment: rsp.ErrorComment}, SubOperations{Remaining: int(rsp.NumberOfRemainingSuboperations),
		Completed: int(rsp.NumberOfCompletedSuboperations), Failed: int(rsp.NumberOfFailedSuboperations), Warning: int(rsp.NumberOfWarningSuboperations)}, nil
}
