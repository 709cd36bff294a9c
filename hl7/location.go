package hl7

import (
	"fmt"
	"strconv"
	"strings"
)

// Location names a position in a message, as the ERL data type of ERR-2 does: a
// segment (its ID and its occurrence among the segments of that ID, 1-based), and
// within it a field, a repetition of the field, a component and a subcomponent (all
// 1-based; 0 means "the whole of the level above").
//
// Its text form is the path Message.Get reads:
//
//	PID-5            field 5 of the first PID, all its repetitions
//	PID-3[2]         the second repetition of PID-3
//	PID-3[2].1       its first component
//	PID-3[2].1.4     the fourth subcomponent of that component
//	PID-5.1          the first component of the first repetition (PID-5[1].1)
//	OBX[3]-5         field 5 of the third OBX segment
//	MSH-9.2          the trigger event
//
// Fields are numbered as the standard numbers them: MSH-1 is the field separator
// itself and MSH-2 the encoding characters.
//
// When a segment ID could not be read at all, Segment is empty and Seq is the
// segment's position in the message (1-based).
type Location struct {
	Segment   string // segment ID ("PID")
	Seq       int    // occurrence of that segment ID in the message (0 is read as 1)
	Field     int    // field number; 0: the whole segment
	Rep       int    // repetition; 0: the whole field (1 when Component is set)
	Component int    // component; 0: the whole repetition
	Sub       int    // subcomponent; 0: the whole component
}

// maxIndex bounds the numbers of a path: no message has a millionth field.
const maxIndex = 1 << 20

// ParseLocation reads a path such as "PID-3[2].1.4" (see Location). A component
// without a repetition means repetition 1. A bare segment ("PID", "OBX[2]") names the
// whole segment.
func ParseLocation(path string) (Location, error) {
	var l Location
	bad := func(why string) (Location, error) {
		return Location{}, fmt.Errorf("hl7: path %q: %s", path, why)
	}
	if len(path) < 3 || !validSegmentID(path[:3]) {
		return bad("it must start with a segment ID: three upper-case letters or digits, the first a letter")
	}
	l.Segment, path = path[:3], path[3:]
	var ok bool
	if l.Seq, path, ok = bracket(path); !ok {
		return bad("a segment occurrence is written [n], n from 1")
	}
	if path == "" {
		return l, nil
	}
	if path[0] != '-' {
		return bad("the field number follows a '-'")
	}
	if l.Field, path, ok = number(path[1:]); !ok {
		return bad("the field number is a number from 1")
	}
	if l.Rep, path, ok = bracket(path); !ok {
		return bad("a repetition is written [n], n from 1")
	}
	if path != "" && path[0] == '.' {
		if l.Component, path, ok = number(path[1:]); !ok {
			return bad("a component number is a number from 1")
		}
		if path != "" && path[0] == '.' {
			if l.Sub, path, ok = number(path[1:]); !ok {
				return bad("a subcomponent number is a number from 1")
			}
		}
	}
	if path != "" {
		return bad("unexpected " + strconv.Quote(path))
	}
	if l.Component > 0 && l.Rep == 0 {
		l.Rep = 1
	}
	return l, nil
}

// bracket reads an optional "[n]".
func bracket(s string) (int, string, bool) {
	if s == "" || s[0] != '[' {
		return 0, s, true
	}
	n, rest, ok := number(s[1:])
	if !ok || rest == "" || rest[0] != ']' {
		return 0, s, false
	}
	return n, rest[1:], true
}

// number reads a decimal number from 1 to maxIndex.
func number(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 7 {
		return 0, s, false
	}
	n, _ := strconv.Atoi(s[:i])
	if n < 1 || n > maxIndex {
		return 0, s, false
	}
	return n, s[i:], true
}

// String returns the path of l ("PID-3[2].1.4", "OBX[3]-5"); "segment 4" when the
// segment ID is unknown; "" for the zero Location.
func (l Location) String() string {
	if l.Segment == "" {
		if l.Seq == 0 {
			return ""
		}
		return "segment " + strconv.Itoa(l.Seq)
	}
	var b strings.Builder
	b.WriteString(l.Segment)
	if l.Seq > 1 {
		fmt.Fprintf(&b, "[%d]", l.Seq)
	}
	if l.Field <= 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "-%d", l.Field)
	if l.Rep > 1 || (l.Rep == 1 && l.Component <= 0) {
		fmt.Fprintf(&b, "[%d]", l.Rep)
	}
	if l.Component > 0 {
		fmt.Fprintf(&b, ".%d", l.Component)
		if l.Sub > 0 {
			fmt.Fprintf(&b, ".%d", l.Sub)
		}
	}
	return b.String()
}

// validSegmentID reports whether id is a segment ID: three upper-case letters or
// digits, the first a letter (Z segments included).
func validSegmentID(id string) bool {
	if len(id) != 3 || id[0] < 'A' || id[0] > 'Z' {
		return false
	}
	for i := 1; i < 3; i++ {
		c := id[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
