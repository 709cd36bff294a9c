package dimse

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Command fields (PS3.7 §E.1).
const (
	CStoreRQ  uint16 = 0x0001
	CStoreRSP uint16 = 0x8001
	CGetRQ    uint16 = 0x0010
	CGetRSP   uint16 = 0x8010
	CFindRQ   uint16 = 0x0020
	CFindRSP  uint16 = 0x8020
	CMoveRQ   uint16 = 0x0021
	CMoveRSP  uint16 = 0x8021
	CEchoRQ   uint16 = 0x0030
	CEchoRSP  uint16 = 0x8030
	CCancelRQ uint16 = 0x0FFF

	NEventReportRQ  uint16 = 0x0100
	NEventReportRSP uint16 = 0x8100
	NActionRQ       uint16 = 0x0130
	NActionRSP      uint16 = 0x8130
)

// CommandDataSetType (0000,0800) values: NoDataSet means no data set follows; any other
// value means one does. Encode writes NoDataSet for a zero CommandDataSetType, so a
// request carrying a data set sets DataSetPresent.
const (
	NoDataSet      uint16 = 0x0101
	DataSetPresent uint16 = 0x0102
)

// Command element tags (group 0000).
const (
	tagCommandGroupLength        uint16 = 0x0000
	tagAffectedSOPClassUID       uint16 = 0x0002
	tagRequestedSOPClassUID      uint16 = 0x0003
	tagCommandField              uint16 = 0x0100
	tagMessageID                 uint16 = 0x0110
	tagMessageIDBeingRespondedTo uint16 = 0x0120
	tagMoveDestination           uint16 = 0x0600
	tagPriority                  uint16 = 0x0700
	tagCommandDataSetType        uint16 = 0x0800
	tagStatus                    uint16 = 0x0900
	tagOffendingElement          uint16 = 0x0901
	tagErrorComment              uint16 = 0x0902
	tagAffectedSOPInstanceUID    uint16 = 0x1000
	tagRequestedSOPInstanceUID   uint16 = 0x1001
	tagEventTypeID               uint16 = 0x1002
	tagActionTypeID              uint16 = 0x1008
	tagRemaining                 uint16 = 0x1020
	tagCompleted                 uint16 = 0x1021
	tagFailed                    uint16 = 0x1022
	tagWarning                   uint16 = 0x1023
	tagMoveOriginatorAETitle     uint16 = 0x1030
	tagMoveOriginatorMessageID   uint16 = 0x1031
)

// OperationName is the DIMSE name of a request's command field ("C-STORE", ...).
func OperationName(field uint16) string {
	switch field &^ 0x8000 {
	case CStoreRQ:
		return "C-STORE"
	case CGetRQ:
		return "C-GET"
	case CFindRQ:
		return "C-FIND"
	case CMoveRQ:
		return "C-MOVE"
	case CEchoRQ:
		return "C-ECHO"
	case NEventReportRQ:
		return "N-EVENT-REPORT"
	case NActionRQ:
		return "N-ACTION"
	}
	return fmt.Sprintf("0x%04X", field)
}

// Command is a DIMSE command set (PS3.7 §9.3, §10.3). Fields absent from a decoded
// command are zero; Has reports presence.
type Command struct {
	CommandField                   uint16
	MessageID                      uint16
	MessageIDBeingRespondedTo      uint16
	AffectedSOPClassUID            string
	RequestedSOPClassUID           string
	AffectedSOPInstanceUID         string
	RequestedSOPInstanceUID        string
	MoveDestination                string
	Priority                       uint16
	CommandDataSetType             uint16
	Status                         uint16
	ErrorComment                   string
	NumberOfRemainingSuboperations uint16
	NumberOfCompletedSuboperations uint16
	NumberOfFailedSuboperations    uint16
	NumberOfWarningSuboperations   uint16
	MoveOriginatorAETitle          string
	MoveOriginatorMessageID        uint16
	EventTypeID                    uint16 // N-EVENT-REPORT
	ActionTypeID                   uint16 // N-ACTION

	present map[uint16]bool
}

// Has reports whether the decoded command carried element (0000,elem).
func (c *Command) Has(elem uint16) bool { return c.present[elem] }

// HasDataSet reports whether a data set follows the command.
func (c *Command) HasDataSet() bool { return c.CommandDataSetType != NoDataSet }

var usTags = map[uint16]func(c *Command) *uint16{
	tagCommandField:              func(c *Command) *uint16 { return &c.CommandField },
	tagMessageID:                 func(c *Command) *uint16 { return &c.MessageID },
	tagMessageIDBeingRespondedTo: func(c *Command) *uint16 { return &c.MessageIDBeingRespondedTo },
	tagPriority:                  func(c *Command) *uint16 { return &c.Priority },
	tagCommandDataSetType:        func(c *Command) *uint16 { return &c.CommandDataSetType },
	tagStatus:                    func(c *Command) *uint16 { return &c.Status },
	tagRemaining:                 func(c *Command) *uint16 { return &c.NumberOfRemainingSuboperations },
	tagCompleted:                 func(c *Command) *uint16 { return &c.NumberOfCompletedSuboperations },
	tagFailed:                    func(c *Command) *uint16 { return &c.NumberOfFailedSuboperations },
	tagWarning:                   func(c *Command) *uint16 { return &c.NumberOfWarningSuboperations },
	tagMoveOriginatorMessageID:   func(c *Command) *uint16 { return &c.MoveOriginatorMessageID },
	tagEventTypeID:               func(c *Command) *uint16 { return &c.EventTypeID },
	tagActionTypeID:              func(c *Command) *uint16 { return &c.ActionTypeID },
}

var strTags = map[uint16]func(c *Command) *string{
	tagAffectedSOPClassUID:     func(c *Command) *string { return &c.AffectedSOPClassUID },
	tagRequestedSOPClassUID:    func(c *Command) *string { return &c.RequestedSOPClassUID },
	tagAffectedSOPInstanceUID:  func(c *Command) *string { return &c.AffectedSOPInstanceUID },
	tagRequestedSOPInstanceUID: func(c *Command) *string { return &c.RequestedSOPInstanceUID },
	tagMoveDestination:         func(c *Command) *string { return &c.MoveDestination },
	tagErrorComment:            func(c *Command) *string { return &c.ErrorComment },
	tagMoveOriginatorAETitle:   func(c *Command) *string { return &c.MoveOriginatorAETitle },
}

// DecodeCommand parses a command set (implicit VR little endian, group 0000 only).
func DecodeCommand(b []byte) (*Command, error) {
	c := &Command{present: map[uint16]bool{}}
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("dimse: command set: truncated element header")
		}
		group, elem := binary.LittleEndian.Uint16(b[0:2]), binary.LittleEndian.Uint16(b[2:4])
		n := binary.LittleEndian.Uint32(b[4:8])
		if group != 0x0000 {
			return nil, fmt.Errorf("dimse: command set: element (%04X,%04X) outside group 0000", group, elem)
		}
		if uint64(n) > uint64(len(b)-8) {
			return nil, fmt.Errorf("dimse: command set: element (0000,%04X) length %d overruns the command", elem, n)
		}
		v := b[8 : 8+n]
		b = b[8+n:]
		c.present[elem] = true
		if f, ok := usTags[elem]; ok {
			if n != 2 {
				return nil, fmt.Errorf("dimse: command set: element (0000,%04X) has length %d, want 2", elem, n)
			}
			*f(c) = binary.LittleEndian.Uint16(v)
			continue
		}
		if f, ok := strTags[elem]; ok {
			*f(c) = strings.TrimRight(string(v), "\x00 ")
		}
		// Other elements (group length, offending element, attribute lists...) are ignored.
	}
	return c, nil
}

// Encode returns the command set in implicit VR little endian with its group length.
func (c *Command) Encode() []byte {
	type el struct {
		tag uint16
		v   []byte
	}
	var els []el
	us := func(tag, v uint16) { els = append(els, el{tag, binary.LittleEndian.AppendUint16(nil, v)}) }
	str := func(tag uint16, s string, pad byte) {
		if s == "" {
			return
		}
		b := []byte(s)
		if len(b)%2 == 1 {
			b = append(b, pad)
		}
		els = append(els, el{tag, b})
	}
	str(tagAffectedSOPClassUID, c.AffectedSOPClassUID, 0)
	str(tagRequestedSOPClassUID, c.RequestedSOPClassUID, 0)
	us(tagCommandField, c.CommandField)
	isRSP := c.CommandField&0x8000 != 0
	if isRSP || c.CommandField == CCancelRQ {
		us(tagMessageIDBeingRespondedTo, c.MessageIDBeingRespondedTo)
	} else {
		us(tagMessageID, c.MessageID)
	}
	str(tagMoveDestination, c.MoveDestination, ' ')
	switch c.CommandField {
	case CStoreRQ, CFindRQ, CMoveRQ, CGetRQ:
		us(tagPriority, c.Priority)
	case NEventReportRQ, NEventReportRSP:
		us(tagEventTypeID, c.EventTypeID)
	case NActionRQ, NActionRSP:
		us(tagActionTypeID, c.ActionTypeID)
	}
	dst := c.CommandDataSetType
	if dst == 0 {
		dst = NoDataSet
	}
	us(tagCommandDataSetType, dst)
	if isRSP {
		us(tagStatus, c.Status)
	}
	if c.ErrorComment != "" {
		ec := c.ErrorComment
		if len(ec) > 64 {
			ec = ec[:64]
		}
		str(tagErrorComment, ec, ' ')
	}
	str(tagAffectedSOPInstanceUID, c.AffectedSOPInstanceUID, 0)
	str(tagRequestedSOPInstanceUID, c.RequestedSOPInstanceUID, 0)
	if c.CommandField == CMoveRSP || c.CommandField == CGetRSP {
		if c.Status == StatusPending || c.Status == StatusCancel {
			us(tagRemaining, c.NumberOfRemainingSuboperations) // absent from final responses
		}
		us(tagCompleted, c.NumberOfCompletedSuboperations)
		us(tagFailed, c.NumberOfFailedSuboperations)
		us(tagWarning, c.NumberOfWarningSuboperations)
	}
	str(tagMoveOriginatorAETitle, c.MoveOriginatorAETitle, ' ')
	if c.MoveOriginatorMessageID != 0 {
		us(tagMoveOriginatorMessageID, c.MoveOriginatorMessageID)
	}
	sort.Slice(els, func(i, j int) bool { return els[i].tag < els[j].tag })
	var body []byte
	for _, e := range els {
		body = binary.LittleEndian.AppendUint16(body, 0)
		body = binary.LittleEndian.AppendUint16(body, e.tag)
		body = binary.LittleEndian.AppendUint32(body, uint32(len(e.v)))
		body = append(body, e.v...)
	}
	out := make([]byte, 0, 12+len(body))
	out = binary.LittleEndian.AppendUint16(out, 0)
	out = binary.LittleEndian.AppendUint16(out, tagCommandGroupLength)
	out = binary.LittleEndian.AppendUint32(out, 4)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(body)))
	return append(out, body...)
}
