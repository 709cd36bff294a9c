package dimse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
