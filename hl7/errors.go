package hl7

import (
	"errors"
	"fmt"
	"strconv"
)

// Code is an error code of HL7 Table 0357 (Message error condition codes): what an
// ACK's ERR segment reports.
type Code int

// The codes of HL7 Table 0357.
const (
	CodeAccepted                Code = 0   // message accepted
	CodeSegmentSequence         Code = 100 // segments out of order, or a required segment missing
	CodeRequiredFieldMissing    Code = 101 // a required field is missing from a segment
	CodeDataType                Code = 102 // a field's data does not match its data type
	CodeTableValue              Code = 103 // a coded value is not in its table
	CodeValueTooLong            Code = 104 // a value exceeds its maximum length (v2.6 and later)
	CodeUnsupportedMessageType  Code = 200 // MSH-9.1 is not a type the receiver handles
	CodeUnsupportedEvent        Code = 201 // MSH-9.2 is not an event the receiver handles
	CodeUnsupportedProcessingID Code = 202 // MSH-11 is not a processing id the receiver handles
	CodeUnsupportedVersion      Code = 203 // MSH-12 is not a version the receiver handles
	CodeUnknownKey              Code = 204 // the key identifier names no record
	CodeDuplicateKey            Code = 205 // the key identifier already exists
	CodeRecordLocked            Code = 206 // the record is locked by the application
	CodeInternal                Code = 207 // application internal error
)

var codeText = map[Code]string{
	CodeAccepted:                "Message accepted",
	CodeSegmentSequence:         "Segment sequence error",
	CodeRequiredFieldMissing:    "Required field missing",
	CodeDataType:                "Data type error",
	CodeTableValue:              "Table value not found",
	CodeValueTooLong:            "Value too long",
	CodeUnsupportedMessageType:  "Unsupported message type",
	CodeUnsupportedEvent:        "Unsupported event code",
	CodeUnsupportedProcessingID: "Unsupported processing id",
	CodeUnsupportedVersion:      "Unsupported version id",
	CodeUnknownKey:              "Unknown key identifier",
	CodeDuplicateKey:            "Duplicate key identifier",
	CodeRecordLocked:            "Application record locked",
	CodeInternal:                "Application internal error",
}

// String returns the code's description in Table 0357 ("Data type error"), or the
// number for a code the table does not hold.
func (c Code) String() string {
	if s, ok := codeText[c]; ok {
		return s
	}
	return strconv.Itoa(int(c))
}

// Error is a fault of a message, where it is and what it is: the content of one ERR
// segment of the acknowledgment (see Ack). Its Text names positions and header values,
// never the content of other fields, so that it can be logged and sent back to the
// sender without carrying patient data.
type Error struct {
	Location      // where: segment, its occurrence, field, repetition, component, subcomponent
	Code     Code // HL7 Table 0357
	Text     string
}

// Error returns "hl7: PID-3[2].1: Data type error (102): <text>".
func (e *Error) Error() string {
	loc := e.Location.String()
	if loc != "" {
		loc += ": "
	}
	return fmt.Sprintf("hl7: %s%s (%d): %s", loc, e.Code, int(e.Code), e.Text)
}

// Errorf returns an *Error at loc with a formatted text.
func Errorf(loc Location, code Code, format string, args ...any) *Error {
	return &Error{Location: loc, Code: code, Text: fmt.Sprintf(format, args...)}
}

// AsError returns the *Error in err's chain, or, for any other error, an application
// internal error (207) whose text does not repeat err (it may name patient data). It
// returns nil for a nil err.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Text: "the message could not be processed"}
}
