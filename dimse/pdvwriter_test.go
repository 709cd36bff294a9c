package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"
)

// oneObjectGet answers every C-GET with one C-STORE sub-operation of payload.
type oneObjectGet struct{ payload []byte }

const tinyCTClass = "1.2.840.10008.5.1.4.1.1.2"

func (h oneObjectGet) HandleRetrieve(ctx context.Context, req *RetrieveRequest, get GetStorer, progress func(SubOperations) error) (Status, SubOperations, []string) {
	st, err := get.Store(ctx, tinyCTClass, "1.2.3.4.5", ExplicitVRLittleEndian, bytes.NewReader(h.payload))
	if err != nil || st.Code != StatusSuccess {
		return Status{Code: StatusOutOfResourcesSubops}, SubOperations{Failed: 1}, []string{"1.2.3.4.5"}
	}
	return Status{Code: StatusSuccess}, SubOperations{Completed: 1}, nil
}

// readMessage reads PDUs until the command (and, when it has one, the data set) of the
// next message is whole.
func (c *Client) readMessage(ctx context.Context) (*Command, []byte, byte, error) {
	var cmd, data []byte
	var decoded *Command
	for {
		p, err := c.readPData(ctx, "a message")
		if err != nil {
			return nil, nil, 0, err
		}
		for _, v := range p.PDVs {
			if v.Command {
				cmd = append(cmd, v.Data...)
				if v.Last {
					if decoded, err = DecodeCommand(cmd); err != nil {
						return nil, nil, 0, err
					}
					if !decoded.HasDataSet() {
						return decoded, nil, v.ContextID, nil
					}
				}
				continue
			}
			data = append(data, v.Data...)
			if v.Last {
				return decoded, data, v.ContextID, nil
			}
		}
	}
}

// TestTinyPeerPDULength: a C-GET requestor announcing a maximum PDU length of 6 (no room
// for a byte of PDV data) is refused at association time; with 7 and 8 the C-STORE
// sub-operation arrives whole, one or two bytes per PDU, and the C-GET completes. No
// hang, no panic.
func TestTinyPeerPDULength(t *testing.T) {
	payload := bytes.Repeat([]byte("LUMEN-PDV-"), 30)
	addr := startServer(t, &Server{RetrieveHandler: oneObjectGet{payload}})
	for _, max := range []uint32{1, 5, 6, 7, 8} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c, err := Dial(ctx, addr, DialConfig{CallingAETitle: "TINY", CalledAETitle: "LUMEN", MaxPDULength: max,
			Contexts: []ProposedContext{{AbstractSyntax: StudyRootGet, TransferSyntaxes: []string{ExplicitVRLittleEndian}},
				{AbstractSyntax: tinyCTClass, TransferSyntaxes: []string{ExplicitVRLittleEndian}}},
			Roles: []RoleSelection{{SOPClassUID: tinyCTClass, SCU: true, SCP: true}}})
		var rj *RejectedError
		if max <= 6 && !errors.As(err, &rj) {
			t.Errorf("max PDU %d: %v, want a permanent A-ASSOCIATE-RJ", max, err)
			if err == nil { // what happens next (a sender looping or panicking) is reported too
				gctx, gcancel := context.WithTimeout(ctx, 3*time.Second)
				if err := tinyGet(gctx, c, payload); err != nil {
					t.Errorf("max PDU %d: C-GET on the accepted association: %v", max, err)
				}
				gcancel()
				c.Abort()
			}
			cancel()
			continue
		}
		if max <= 6 {
			if rj.Result != RJPermanent {
				t.Errorf("max PDU %d: %v, want a permanent rejection", max, rj)
			}
			cancel()
			continue
		}
		if err != nil {
			t.Fatalf("max PDU %d: %v", max, err)
		}
		if err := tinyGet(ctx, c, payload); err != nil {
			t.Errorf("max PDU %d: %v", max, err)
		}
		c.Release()
		cancel()
	}
}

// tinyGet runs one C-GET on c, answering its C-STORE sub-operation, and checks that the
// sub-operation's data set is payload and the C-GET succeeds.
func tinyGet(ctx context.Context, c *Client, payload []byte) error {
	getID, _ := c.context(StudyRootGet, ExplicitVRLittleEndian)
	rq := &Command{CommandField: CGetRQ, MessageID: 1, AffectedSOPClassUID: StudyRootGet, CommandDataSetType: DataSetPresent}
	if err := c.sendCommand(getID, rq.Encode()); err != nil {
		return err
	}
	if err := c.sendData(ctx, getID, bytes.NewReader([]byte{0x08, 0x00, 0x52, 0x00, 'C', 'S', 6, 0, 'S', 'T', 'U', 'D', 'Y', ' '})); err != nil {
		return err
	}
	stored := false
	for {
		cmd, data, id, err := c.readMessage(ctx)
		if err != nil {
			return err
		}
		switch cmd.CommandField {
		case CStoreRQ:
			stored = bytes.Equal(data, payload)
			rsp := &Command{CommandField: CStoreRSP, MessageIDBeingRespondedTo: cmd.MessageID, AffectedSOPClassUID: cmd.AffectedSOPClassUID,
				AffectedSOPInstanceUID: cmd.AffectedSOPInstanceUID, Status: StatusSuccess}
			if err := c.sendCommand(id, rsp.Encode()); err != nil {
				return err
			}
		case CGetRSP:
			if cmd.Status == StatusPending {
				continue
			}
			if cmd.Status != StatusSuccess {
				return fmt.Errorf("C-GET status 0x%04X", cmd.Status)
			}
			if !stored {
				return errors.New("the sub-operation's data set did not arrive whole")
			}
			return nil
		}
	}
}

// TestPDVWriterMessage streams a command and data sets of sizes around the PDV and
// block boundaries to peers of several maximum PDU lengths, over TCP (vectored writes)
// and over a pipe (gathered writes), and checks what the peer reads: P-DATA-TF PDUs of
// one PDV within the maximum, the command whole and flagged last, then the data set
// whole in order with only its last PDV flagged last.
func TestPDVWriterMessage(t *testing.T) {
	cmd := bytes.Repeat([]byte("CMD"), 50)
	for _, peerMax := range []uint32{0, 16384, 8000, 300} {
		chunk, _ := pdvChunk(peerMax)
		block := max(chunk, sendBlock/chunk*chunk)
		sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, block - 1, block, block + 1, 2 * block, 2*block + chunk/2}
		if peerMax == 0 {
			sizes = []int{0, 1, chunk, chunk + 1, 2*chunk + 3}
		}
		for _, transport := range []string{"tcp", "pipe"} {
			for _, size := range sizes {
				data := make([]byte, size)
				for i := range data {
					data[i] = byte(i*7 + i/251)
				}
				w, r := connPair(t, transport)
				errc := make(chan error, 1)
				go func() {
					p, err := newPDVWriter(w, 3, peerMax)
					if err == nil {
						err = p.message(context.Background(), cmd, bytes.NewReader(data))
						p.release()
					}
					errc <- err
				}()
				if err := readMessagePDUs(r, peerMax, cmd, data); err != nil {
					t.Errorf("%s, max PDU %d, %d bytes: %v", transport, peerMax, size, err)
				}
				if err := <-errc; err != nil {
					t.Errorf("%s, max PDU %d, %d bytes: write: %v", transport, peerMax, size, err)
				}
				w.Close()
				r.Close()
			}
		}
	}
}

// connPair is two ends of a loopback TCP connection or of a net.Pipe.
func connPair(t *testing.T, transport string) (net.Conn, net.Conn) {
	if transport == "pipe" {
		return net.Pipe()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return w, r
}

// readMessagePDUs reads one message from r and checks it against cmd and data.
func readMessagePDUs(r net.Conn, peerMax uint32, cmd, data []byte) error {
	limit := peerMax
	if limit == 0 {
		limit = maxPDVData + pdvOverhead
	}
	var gotCmd, gotData []byte
	cmdDone := false
	r.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		p, _, err := ReadPDU(r, limit, nil)
		if err != nil {
			return err
		}
		pd, ok := p.(*PDataTF)
		if !ok || len(pd.PDVs) != 1 {
			return fmt.Errorf("got %T, want a P-DATA-TF of one PDV", p)
		}
		v := pd.PDVs[0]
		if v.ContextID != 3 {
			return fmt.Errorf("context ID %d", v.ContextID)
		}
		if v.Command {
			if cmdDone {
				return errors.New("a command PDV after the command's last")
			}
			gotCmd = append(gotCmd, v.Data...)
			cmdDone = v.Last
			continue
		}
		if !cmdDone {
			return errors.New("data before the command's last PDV")
		}
		gotData = append(gotData, v.Data...)
		if v.Last {
			break
		}
	}
	if !bytes.Equal(gotCmd, cmd) {
		return fmt.Errorf("command of %d bytes, want %d", len(gotCmd), len(cmd))
	}
	if !bytes.Equal(gotData, data) {
		return fmt.Errorf("data set of %d bytes differs (want %d)", len(gotData), len(data))
	}
	// Nothing follows the last PDV.
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		return errors.New("bytes after the data set's last PDV")
	}
	return nil
}
