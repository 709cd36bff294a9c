package dcm

import (
	"bytes"
	"errors"
)

// ErrNotJSONObject is returned by ScanJSONObject for text that is not a JSON object.
var ErrNotJSONObject = errors.New("dcm: not a JSON object")

// JSONMember is one member of a JSON object: its key (as written between the quotes)
// and its raw value; Start and End locate the whole member ("key": through the value)
// in the object's text; Loose reports white space outside the value's strings.
type JSONMember struct {
	Key, Value []byte
	Start, End int
	Loose      bool
}

// ScanJSONObject reads the members of the JSON object doc in the order written (DICOM
// JSON as Dataset.JSON writes it, or as stored) and calls fn with each. When fn returns
// false the scan stops: ScanJSONObject returns the offset just after that member, and
// the rest of doc is not read. Otherwise, all members read, it checks that only white
// space follows the object and returns len(doc). null is an object without members. The
// structure is checked (keys, colons, commas, brackets, strings), not the grammar of the
// numbers and literals.
func ScanJSONObject(doc []byte, fn func(JSONMember) bool) (int, error) {
	i := skipSpace(doc, 0)
	if string(bytes.TrimRight(doc[i:], " \t\n\r")) == "null" {
		return len(doc), nil
	}
	if i == len(doc) || doc[i] != '{' {
		return 0, ErrNotJSONObject
	}
	i = skipSpace(doc, i+1)
	if i < len(doc) && doc[i] == '}' {
		i++
	} else {
		for {
			if i == len(doc) || doc[i] != '"' {
				return 0, ErrNotJSONObject
			}
			start := i
			end, err := skipString(doc, i)
			if err != nil {
				return 0, err
			}
			key := doc[i+1 : end-1]
			i = skipSpace(doc, end)
			if i == len(doc) || doc[i] != ':' {
				return 0, ErrNotJSONObject
			}
			i = skipSpace(doc, i+1)
			end, loose, err := skipValue(doc, i)
			if err != nil {
				return 0, err
			}
			if !fn(JSONMember{Key: key, Value: doc[i:end], Start: start, End: end, Loose: loose}) {
				return end, nil
			}
			i = skipSpace(doc, end)
			if i == len(doc) {
				return 0, ErrNotJSONObject
			}
			if doc[i] == '}' {
				i++
				break
			}
			if doc[i] != ',' {
				return 0, ErrNotJSONObject
			}
			i = skipSpace(doc, i+1)
		}
	}
	if skipSpace(doc, i) != len(doc) {
		return 0, ErrNotJSONObject
	}
	return len(doc), nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end (past the closing quote) of the string starting at b[i].
func skipString(b []byte, i int) (int, error) {
	for i++; ; {
		k := bytes.IndexByte(b[i:], '"')
		if k < 0 {
			return 0, ErrNotJSONObject
		}
		i += k
		escapes := 0
		for p := i - 1; b[p] == '\\'; p-- {
			escapes++
		}
		i++
		if escapes%2 == 0 {
			return i, nil
		}
	}
}

// skipValue returns the end of the value starting at b[i], and whether it has white
// space outside its strings.
func skipValue(b []byte, i int) (end int, loose bool, err error) {
	if i == len(b) {
		return 0, false, ErrNotJSONObject
	}
	switch b[i] {
	case '"':
		end, err := skipString(b, i)
		return end, false, err
	case '{', '[':
		var stack []byte
		for i < len(b) {
			switch c := b[i]; c {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, false, err
				}
				i = end
				continue
			case '{', '[':
				stack = append(stack, c+2) // '}' is '{'+2, ']' is '['+2
			case '}', ']':
				if len(stack) == 0 || stack[len(stack)-1] != c {
					return 0, false, ErrNotJSONObject
				}
				stack = stack[:len(stack)-1]
				if len(stack) == 0 {
					return i + 1, loose, nil
				}
			case ' ', '\t', '\n', '\r':
				loose = true
			}
			i++
		}
		return 0, false, ErrNotJSONObject
	}
	end = i
	for end < len(b) && b[end] != ',' && b[end] != '}' && b[end] != ']' && b[end] != ' ' && b[end] != '\t' && b[end] != '\n' && b[end] != '\r' {
		end++
	}
	if end == i {
		return 0, false, ErrNotJSONObject
	}
	return end, false, nil
}
