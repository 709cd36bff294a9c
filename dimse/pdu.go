package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PDU types (PS3.8 §9.3.1).
const (
	TypeAAssociateRQ byte = 0x01
	TypeAAssociateAC byte = 0x02
	TypeAAssociateRJ byte = 0x03
	TypePDataTF      byte = 0x04
	TypeAReleaseRQ   byte = 0x05
	TypeAReleaseRP   byte = 0x06
	TypeAAbort       byte = 0x07
)

// Item types (PS3.8 §9.3.2, Annex D).
const (
	ItemApplicationContext     byte = 0x10
	ItemPresentationContextRQ  byte = 0x20
	ItemPresentationContextAC  byte = 0x21
	ItemAbstractSyntax         byte = 0x30
	ItemTransferSyntax         byte = 0x40
	ItemUserInformation        byte = 0x50
	ItemMaximumLength          byte = 0x51
	ItemImplementationClassUID byte = 0x52
	ItemAsynchronousOpsWindow  byte = 0x53
	ItemRoleSelection          byte = 0x54
	ItemImplementationVersion  byte = 0x55
	ItemSOPClassExtendedNeg    byte = 0x56
	ItemSOPClassCommonExtended byte = 0x57
	ItemUserIdentityRQ         byte = 0x58
	ItemUserIdentityAC         byte = 0x59
	applicationContextName          = "1.2.840.10008.3.1.1.1"
	maxAssociatePDULength           = 1 << 20 // association PDUs are small; refuse more
)

// Presentation context results (PS3.8 §9.3.3.2).
const (
	ResultAcceptance                   byte = 0
	ResultUserRejection                byte = 1
	ResultNoReason                     byte = 2
	ResultAbstractSyntaxNotSupported   byte = 3
	ResultTransferSyntaxesNotSupported byte = 4
)

// A-ASSOCIATE-RJ result, source and reason values (PS3.8 §9.3.4).
const (
	RJPermanent byte = 1
	RJTransient byte = 2

	RJSourceServiceUser                 byte = 1
	RJSourceServiceProviderACSE         byte = 2
	RJSourceServiceProviderPresentation byte = 3

	RJReasonNoReason                       byte = 1
	RJReasonApplicationContextNotSupported byte = 2
	RJReasonCallingAENotRecognized         byte = 3
	RJReasonCalledAENotRecognized          byte = 7
	RJReasonProtocolVersionNotSupported    byte = 2 // with source 2 (ACSE)
	RJReasonTemporaryCongestion            byte = 1 // with source 3
	RJReasonLocalLimitExceeded             byte = 2 // with source 3
)

// A-ABORT sources and reasons (PS3.8 §9.3.8).
const (
	AbortSourceServiceUser     byte = 0
	AbortSourceServiceProvider byte = 2

	AbortReasonNotSpecified      byte = 0
	AbortReasonUnrecognizedPDU   byte = 1
	AbortReasonUnexpectedPDU     byte = 2
	AbortReasonUnrecognizedParam byte = 4
	AbortReasonUnexpectedParam   byte = 5
	AbortReasonInvalidParamValue byte = 6
)

// ErrPDU marks a PDU that violates PS3.8 encoding; the association is aborted.
var ErrPDU = errors.New("dimse: invalid PDU")

// PDU is one protocol data unit.
type PDU interface {
	// PDUType returns the PDU type byte.
	PDUType() byte
	// appendBody appends the PDU's body (after the 6-byte header).
	appendBody(b []byte) []byte
}

// PresentationContext is a presentation context item: in an RQ, an abstract syntax with
// the offered transfer syntaxes; in an AC, the result and the accepted transfer syntax.
type PresentationContext struct {
	ID               byte
	Result           byte     // AC only
	AbstractSyntax   string   // RQ only
	TransferSyntaxes []string // RQ: offered, in the requestor's order; AC: the accepted one
}

// RoleSelection is an SCP/SCU role selection sub-item (PS3.7 Annex D.3.3.4).
type RoleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// RawItem is a user information sub-item kept as bytes (extended negotiation, user
// identity and anything unknown).
type RawItem struct {
	Type byte
	Data []byte
}

// UserInformation is the user information item.
type UserInformation struct {
	MaxPDULength              uint32
	ImplementationClassUID    string
	ImplementationVersionName string
	// AsyncOpsInvoked/Performed are set when the sub-item is present (HasAsyncOps).
	HasAsyncOps                        bool
	AsyncOpsInvoked, AsyncOpsPerformed uint16
	Roles                              []RoleSelection
	Other                              []RawItem
}

// AAssociate is an A-ASSOCIATE-RQ or -AC PDU.
type AAssociate struct {
	// AC is true for A-ASSOCIATE-AC.
	AC                   bool
	ProtocolVersion      uint16
	CalledAETitle        string
	CallingAETitle       string
	ApplicationContext   string
	PresentationContexts []PresentationContext
	UserInformation      UserInformation
}

// PDUType implements PDU.
func (a *AAssociate) PDUType() byte {
	if a.AC {
		return TypeAAssociateAC
	}
	return TypeAAssociateRQ
}

// AAssociateRJ is an A-ASSOCIATE-RJ PDU.
type AAssociateRJ struct{ Result, Source, Reason byte }

// PDUType implements PDU.
func (*AAssociateRJ) PDUType() byte { return TypeAAssociateRJ }

// PDV is a presentation data value item of a P-DATA-TF PDU.
type PDV struct {
	ContextID byte
	Command   bool // message control header bit 0
	Last      bool // bit 1
	Data      []byte
}

// PDataTF is a P-DATA-TF PDU.
type PDataTF struct{ PDVs []PDV }

// PDUType implements PDU.
func (*PDataTF) PDUType() byte { return TypePDataTF }

// AReleaseRQ is an A-RELEASE-RQ PDU.
type AReleaseRQ struct{}

// PDUType implements PDU.
func (*AReleaseRQ) PDUType() byte { return TypeAReleaseRQ }

// AReleaseRP is an A-RELEASE-RP PDU.
type AReleaseRP struct{}

// PDUType implements PDU.
func (*AReleaseRP) PDUType() byte { return TypeAReleaseRP }

// AAbort is an A-ABORT PDU.
type AAbort struct{ Source, Reason byte }

// PDUType implements PDU.
func (*AAbort) PDUType() byte { return TypeAAbort }

// EncodePDU returns the bytes of a PDU, header included.
func EncodePDU(p PDU) []byte {
	b := make([]byte, 6, 256)
	b[0] = p.PDUType()
	b = p.appendBody(b)
	binary.BigEndian.PutUint32(b[2:6], uint32(len(b)-6))
	return b
}

func aeField(s string) []byte {
	b := []byte(fmt.Sprintf("%-16s", s))
	return b[:16]
}

func appendItem(b []byte, typ byte, body []byte) []byte {
	b = append(b, typ, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func (a *AAssociate) appendBody(b []byte) []byte {
	v := a.ProtocolVersion
	if v == 0 {
		v = 1
	}
	b = binary.BigEndian.AppendUint16(b, v)
	b = append(b, 0, 0)
	b = append(b, aeField(a.CalledAETitle)...)
	b = append(b, aeField(a.CallingAETitle)...)
	b = append(b, make([]byte, 32)...)
	ctx := a.ApplicationContext
	if ctx == "" {
		ctx = applicationContextName
	}
	b = appendItem(b, ItemApplicationContext, []byte(ctx))
	for _, pc := range a.PresentationContexts {
		var body []byte
		if a.AC {
			body = append(body, pc.ID, 0, pc.Result, 0)
			ts := ""
			if len(pc.TransferSyntaxes) > 0 {
				ts = pc.TransferSyntaxes[0]
			}
			body = appendItem(body, ItemTransferSyntax, []byte(ts))
			b = appendItem(b, ItemPresentationContextAC, body)
			continue
		}
		body = append(body, pc.ID, 0, 0, 0)
		body = appendItem(body, ItemAbstractSyntax, []byte(pc.AbstractSyntax))
		for _, ts := range pc.TransferSyntaxes {
			body = appendItem(body, ItemTransferSyntax, []byte(ts))
		}
		b = appendItem(b, ItemPresentationContextRQ, body)
	}
	u := a.UserInformation
	var ub []byte
	ub = appendItem(ub, ItemMaximumLength, binary.BigEndian.AppendUint32(nil, u.MaxPDULength))
	if u.ImplementationClassUID != "" {
		ub = appendItem(ub, ItemImplementationClassUID, []byte(u.ImplementationClassUID))
	}
	if u.HasAsyncOps {
		ub = appendItem(ub, ItemAsynchronousOpsWindow, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, u.AsyncOpsInvoked), u.AsyncOpsPerformed))
	}
	for _, r := range u.Roles {
		rb := binary.BigEndian.AppendUint16(nil, uint16(len(r.SOPClassUID)))
		rb = append(rb, r.SOPClassUID...)
		rb = append(rb, boolByte(r.SCU), boolByte(r.SCP))
		ub = appendItem(ub, ItemRoleSelection, rb)
	}
	if u.ImplementationVersionName != "" {
		ub = appendItem(ub, ItemImplementationVersion, []byte(u.ImplementationVersionName))
	}
	for _, o := range u.Other {
		ub = appendItem(ub, o.Type, o.Data)
	}
	return appendItem(b, ItemUserInformation, ub)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

func (r *AAssociateRJ) appendBody(b []byte) []byte { return append(b, 0, r.Result, r.Source, r.Reason) }

func (p *PDataTF) appendBody(b []byte) []byte {
	for _, v := range p.PDVs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(v.Data)+2))
		var mch byte
		if v.Command {
			mch |= 1
		}
		if v.Last {
			mch |= 2
		}
		b = append(b, v.ContextID, mch)
		b = append(b, v.Data...)
	}
	return b
}

func (*AReleaseRQ) appendBody(b []byte) []byte { return append(b, 0, 0, 0, 0) }
func (*AReleaseRP) appendBody(b []byte) []byte { return append(b, 0, 0, 0, 0) }
func (a *AAbort) appendBody(b []byte) []byte   { return append(b, 0, 0, a.Source, a.Reason) }

// PDUError is a decoding failure with the A-ABORT reason to send.
type PDUError struct {
	Reason byte
	Msg    string
}

// Error describes the violation.
func (e *PDUError) Error() string { return "dimse: invalid PDU: " + e.Msg }

// Unwrap makes errors.Is(err, ErrPDU) true.
func (e *PDUError) Unwrap() error { return ErrPDU }

func pduErr(reason byte, format string, args ...any) error {
	return &PDUError{Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ReadPDU reads one PDU. maxPDataLength bounds P-DATA-TF PDUs (the maximum length this
// side advertised); association PDUs are bounded by 1 MiB. Lengths are checked before
// anything is allocated. buf, if large enough, holds P-DATA-TF bodies; the PDVs returned
// alias it until the next call.
func ReadPDU(r io.Reader, maxPDataLength uint32, buf []byte) (PDU, []byte, error) {
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, buf, err
	}
	typ, length := hdr[0], binary.BigEndian.Uint32(hdr[2:6])
	limit := uint32(maxAssociatePDULength)
	switch typ {
	case TypePDataTF:
		limit = maxPDataLength
	case TypeAAssociateRQ, TypeAAssociateAC:
	case TypeAAssociateRJ, TypeAReleaseRQ, TypeAReleaseRP, TypeAAbort:
		limit = 4
		if length != 4 {
			return nil, buf, pduErr(AbortReasonInvalidParamValue, "PDU type 0x%02x with length %d, want 4", typ, length)
		}
	default:
		return nil, buf, pduErr(AbortReasonUnrecognizedPDU, "unknown PDU type 0x%02x", typ)
	}
	if length > limit {
		return nil, buf, pduErr(AbortReasonInvalidParamValue, "PDU type 0x%02x length %d exceeds the limit %d", typ, length, limit)
	}
	var body []byte
	if typ == TypePDataTF {
		// Bounded by what this side advertised: read into the reusable buffer.
		if uint32(cap(buf)) < length {
			buf = make([]byte, length)
		}
		body = buf[:length]
		if _, err := io.ReadFull(r, body); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, buf, err
		}
	} else {
		// Other PDUs may claim up to 1 MiB before negotiation: grow with the bytes that
		// actually arrive instead of trusting the length.
		var err error
		body, err = io.ReadAll(io.LimitReader(r, int64(length)))
		if err == nil && uint32(len(body)) != length {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, buf, err
		}
	}
	p, err := decodeBody(typ, body)
	return p, buf, err
}

// DecodePDU decodes a whole PDU (header and body) held in memory.
func DecodePDU(b []byte) (PDU, error) {
	if len(b) < 6 {
		return nil, pduErr(AbortReasonInvalidParamValue, "%d bytes, shorter than a PDU header", len(b))
	}
	length := binary.BigEndian.Uint32(b[2:6])
	if uint64(length) != uint64(len(b)-6) {
		return nil, pduErr(AbortReasonInvalidParamValue, "PDU length %d but %d bytes follow", length, len(b)-6)
	}
	switch b[0] {
	case TypeAAssociateRJ, TypeAReleaseRQ, TypeAReleaseRP, TypeAAbort:
		if length != 4 {
			return nil, pduErr(AbortReasonInvalidParamValue, "PDU type 0x%02x with length %d, want 4", b[0], length)
		}
	case TypeAAssociateRQ, TypeAAssociateAC, TypePDataTF:
	default:
		return nil, pduErr(AbortReasonUnrecognizedPDU, "unknown PDU type 0x%02x", b[0])
	}
	return decodeBody(b[0], b[6:])
}

func decodeBody(typ byte, body []byte) (PDU, error) {
	switch typ {
	case TypeAAssociateRQ, TypeAAssociateAC:
		return decodeAssociate(typ == TypeAAssociateAC, body)
	case TypeAAssociateRJ:
		return &AAssociateRJ{Result: body[1], Source: body[2], Reason: body[3]}, nil
	case TypePDataTF:
		return decodePData(body)
	case TypeAReleaseRQ:
		return &AReleaseRQ{}, nil
	case TypeAReleaseRP:
		return &AReleaseRP{}, nil
	case TypeAAbort:
		return &AAbort{Source: body[2], Reason: body[3]}, nil
	}
	return nil, pduErr(AbortReasonUnrecognizedPDU, "unknown PDU type 0x%02x", typ)
}

func decodePData(body []byte) (*PDataTF, error) {
	p := &PDataTF{}
	for len(body) > 0 {
		if len(body) < 6 {
			return nil, pduErr(AbortReasonInvalidParamValue, "truncated PDV item header")
		}
		n := binary.BigEndian.Uint32(body[0:4])
		if n < 2 || uint64(n) > uint64(len(body)-4) {
			return nil, pduErr(AbortReasonInvalidParamValue, "PDV item length %d does not fit the PDU", n)
		}
		mch := body[5]
		if mch&^3 != 0 {
			return nil, pduErr(AbortReasonInvalidParamValue, "PDV message control header 0x%02x", mch)
		}
		p.PDVs = append(p.PDVs, PDV{ContextID: body[4], Command: mch&1 != 0, Last: mch&2 != 0, Data: body[6 : 4+n]})
		body = body[4+n:]
	}
	if len(p.PDVs) == 0 {
		return nil, pduErr(AbortReasonInvalidParamValue, "P-DATA-TF without PDV items")
	}
	return p, nil
}

// items splits a sequence of items (type, reserved, 2-byte length, body).
func items(b []byte, yield func(typ byte, body []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return pduErr(AbortReasonInvalidParamValue, "truncated item header")
		}
		n := int(binary.BigEndian.Uint16(b[2:4]))
		if n > len(b)-4 {
			return pduErr(AbortReasonInvalidParamValue, "item 0x%02x length %d overruns its container", b[0], n)
		}
		if err := yield(b[0], b[4:4+n]); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

func uid(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

func decodeAssociate(ac bool, body []byte) (*AAssociate, error) {
	if len(body) < 68 {
		return nil, pduErr(AbortReasonInvalidParamValue, "A-ASSOCIATE body of %d bytes", len(body))
	}
	a := &AAssociate{
		AC:              ac,
		ProtocolVersion: binary.BigEndian.Uint16(body[0:2]),
		CalledAETitle:   strings.TrimSpace(string(body[4:20])),
		CallingAETitle:  strings.TrimSpace(string(body[20:36])),
	}
	err := items(body[68:], func(typ byte, ib []byte) error {
		switch typ {
		case ItemApplicationContext:
			a.ApplicationContext = uid(ib)
		case ItemPresentationContextRQ, ItemPresentationContextAC:
			if (typ == ItemPresentationContextAC) != ac {
				return pduErr(AbortReasonUnexpectedParam, "presentation context item 0x%02x in the wrong PDU", typ)
			}
			if len(ib) < 4 {
				return pduErr(AbortReasonInvalidParamValue, "truncated presentation context item")
			}
			pc := PresentationContext{ID: ib[0], Result: ib[2]}
			if !ac {
				pc.Result = 0
			}
			if err := items(ib[4:], func(st byte, sb []byte) error {
				switch st {
				case ItemAbstractSyntax:
					pc.AbstractSyntax = uid(sb)
				case ItemTransferSyntax:
					pc.TransferSyntaxes = append(pc.TransferSyntaxes, uid(sb))
				default:
					return pduErr(AbortReasonUnrecognizedParam, "unknown presentation context sub-item 0x%02x", st)
				}
				return nil
			}); err != nil {
				return err
			}
			a.PresentationContexts = append(a.PresentationContexts, pc)
		case ItemUserInformation:
			return decodeUserInfo(&a.UserInformation, ib)
		default:
			return pduErr(AbortReasonUnrecognizedParam, "unknown item type 0x%02x", typ)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

func decodeUserInfo(u *UserInformation, b []byte) error {
	return items(b, func(typ byte, ib []byte) error {
		switch typ {
		case ItemMaximumLength:
			if len(ib) != 4 {
				return pduErr(AbortReasonInvalidParamValue, "maximum length sub-item of %d bytes", len(ib))
			}
			u.MaxPDULength = binary.BigEndian.Uint32(ib)
		case ItemImplementationClassUID:
			u.ImplementationClassUID = uid(ib)
		case ItemImplementationVersion:
			u.ImplementationVersionName = strings.TrimSpace(string(ib))
		case ItemAsynchronousOpsWindow:
			if len(ib) != 4 {
				return pduErr(AbortReasonInvalidParamValue, "asynchronous operations window sub-item of %d bytes", len(ib))
			}
			u.HasAsyncOps = true
			u.AsyncOpsInvoked = binary.BigEndian.Uint16(ib[0:2])
			u.AsyncOpsPerformed = binary.BigEndian.Uint16(ib[2:4])
		case ItemRoleSelection:
			if len(ib) < 2 {
				return pduErr(AbortReasonInvalidParamValue, "truncated role selection sub-item")
			}
			n := int(binary.BigEndian.Uint16(ib[0:2]))
			if len(ib) != 2+n+2 {
				return pduErr(AbortReasonInvalidParamValue, "role selection sub-item length mismatch")
			}
			u.Roles = append(u.Roles, RoleSelection{SOPClassUID: uid(ib[2 : 2+n]), SCU: ib[2+n] == 1, SCP: ib[3+n] == 1})
		default:
			u.Other = append(u.Other, RawItem{Type: typ, Data: append([]byte(nil), ib...)})
		}
		return nil
	})
}
