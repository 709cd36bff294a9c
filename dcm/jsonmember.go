package dcm

import (
	"strconv"
	"unicode/utf8"
)

// maxJSONMemberValue bounds the values AppendJSONMember writes (far below
// MaxValueLength, past which Dataset.JSON writes a BulkDataURI).
const maxJSONMemberValue = 1024

// AppendJSONMember appends to dst the member of a DICOM JSON object
// ("GGGGEEEE":{"vr":...}) that Dataset.JSON writes for the element of tag and vr
// holding values, in a data set without a Specific Character Set: the element NewValue
// makes of the values or, for the VRs a character set governs (IsTextVR), the one
// NewElement makes of them joined with backslashes and padded to an even length. It
// writes it straight from the values, without building the element, for the answers
// of queries (a page of QIDO-RS results).
//
// It takes the string VRs and US, each value printable ASCII without a backslash,
// without leading or trailing spaces and at most 1,024 bytes long, a person name without
// component groups (=) nor made of separators only, a US value from 0 to 65535 written
// in decimal, and no empty value beside others ([""] is no value at all). For anything
// else ok is false and dst comes back unchanged: the caller builds the element and
// writes it with Dataset.JSON, as before.
func AppendJSONMember(dst []byte, tag Tag, vr string, values []string) (out []byte, ok bool) {
	return appendJSONMember(dst, tag, vr, values, false)
}

// AppendJSONMemberUTF8 is AppendJSONMember for a data set whose Specific Character
// Set is ISO_IR 192 (UTF-8), as index.Answer makes one when a text value is not ASCII:
// the values of the VRs a character set governs (IsTextVR) may also hold valid UTF-8
// beyond ASCII. The other rules, and the member of any other value, are those of
// AppendJSONMember.
func AppendJSONMemberUTF8(dst []byte, tag Tag, vr string, values []string) (out []byte, ok bool) {
	return appendJSONMember(dst, tag, vr, values, true)
}

func appendJSONMember(dst []byte, tag Tag, vr string, values []string, utf8Set bool) (out []byte, ok bool) {
	if vr != "US" && !isStringVR(vr) || tag == TagSpecificCharacterSet || tag.Element() == 0x0000 || tag.Group() == 0x0002 {
		return dst, false // as Dataset.JSON writes them: not from their values, or not at all
	}
	if len(values) > 1 && (vr == "LT" || vr == "ST" || vr == "UT" || vr == "UR") {
		return dst, false // one value with backslashes in it, as the element holds it
	}
	if len(values) == 1 && values[0] == "" && vr != "US" { // NewValue refuses an empty US
		values = nil
	}
	beyondASCII := utf8Set && isTextVR(vr)
	for _, v := range values {
		if !plainValue(v, vr, beyondASCII) {
			return dst, false
		}
	}
	out = append(dst, '"')
	out = appendHex(out, tag)
	out = append(out, `":{"vr":"`...)
	out = append(out, vr...)
	out = append(out, '"')
	if len(values) > 0 {
		out = append(out, `,"Value":[`...)
		for i, v := range values {
			if i > 0 {
				out = append(out, ',')
			}
			switch vr {
			case "PN":
				out = append(out, `{"Alphabetic":`...)
				out = appendJSONString(out, v)
				out = append(out, '}')
			case "US":
				out = append(out, v...) // plainValue: canonical decimal, 0 to 65535
			case "IS", "DS":
				out = appendNumberString(out, v, vr)
			default:
				out = appendJSONString(out, v)
			}
		}
		out = append(out, ']')
	}
	return append(out, '}'), true
}

// plainValue reports a value AppendJSONMember writes as it is; beyondASCII admits
// valid UTF-8 beyond ASCII (AppendJSONMemberUTF8, text VRs).
func plainValue(v, vr string, beyondASCII bool) bool {
	if v == "" || len(v) > maxJSONMemberValue || v[0] == ' ' || v[len(v)-1] == ' ' {
		return false
	}
	if beyondASCII && !utf8.ValidString(v) {
		return false
	}
	padding := true // made of person name separators only (allPadding)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c >= 0x80 && beyondASCII {
			padding = false
			continue
		}
		if c < 0x20 || c > 0x7E || c == '\\' || vr == "PN" && c == '=' {
			return false
		}
		if c != '^' && c != ' ' {
			padding = false
		}
	}
	if vr == "PN" && padding {
		return false
	}
	if vr == "US" {
		n, err := strconv.Atoi(v)
		return err == nil && n >= 0 && n <= 0xFFFF && strconv.Itoa(n) == v
	}
	return true
}

// appendHex appends the eight upper-case hex digits of a tag (Tag.Hex).
func appendHex(b []byte, t Tag) []byte {
	const hex = "0123456789ABCDEF"
	return append(b, hex[t>>28&0xF], hex[t>>24&0xF], hex[t>>20&0xF], hex[t>>16&0xF],
		hex[t>>12&0xF], hex[t>>8&0xF], hex[t>>4&0xF], hex[t&0xF])
}
