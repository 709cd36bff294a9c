package dicomweb

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"

	"github.com/lumenpacs/lumen/dcm"
)

// mergeStored merges an instance's stored metadata (DICOM JSON, PS3.18 F.2) into the
// JSON object of its QIDO-RS result (held), in one pass over both: the members of the
// two objects, each in ascending key order (as dcm writes them), are merged by key, as
// includefield asks (PS3.18 10.6.3.3). A member of the stored metadata is taken
//   - when its tag is one of fromMeta (the return attributes the index record does not
//     hold), whether or not held has it;
//   - for Specific Character Set (0008,0005), when held has none;
//   - with all, when held has no member of that tag.
//
// Otherwise held's member is kept. Relative BulkDataURIs of the stored members become
// absolute under instanceURL (as absoluteBulkURIs makes them). The result is the object
// encoding/json makes of the merged members (a map of json.RawMessage), byte for byte:
// members in ascending key order, values compact, with <, >, &, U+2028 and U+2029
// escaped.
func mergeStored(held, stored []byte, instanceURL string, fromMeta []dcm.Tag, all bool) ([]byte, error) {
	h, err := members(held, nil)
	if err != nil {
		return nil, err
	}
	s, err := members(stored, make([]member, 0, 128))
	if err != nil {
		return nil, err
	}
	h, s = byKey(h), byKey(s)
	keys := make([][]byte, len(fromMeta))
	for i, t := range fromMeta {
		keys[i] = []byte(t.Hex())
	}
	slices.SortFunc(keys, bytes.Compare) // in tag order already, the order of their hex forms
	heldCS := false
	for _, m := range h {
		if string(m.key) == charsetKey {
			heldCS = true
		}
	}
	take := func(key []byte, inHeld bool) bool {
		if !all {
			if _, ok := slices.BinarySearchFunc(keys, key, bytes.Compare); ok {
				return true
			}
		}
		if string(key) == charsetKey {
			return !heldCS
		}
		return all && !inHeld
	}
	bulkFrom := []byte(`"BulkDataURI":"bulkdata/`)
	bulkTo := []byte(`"BulkDataURI":"` + instanceURL + `/bulkdata/`)
	out := make([]byte, 0, len(held)+len(stored)+len(stored)/8)
	out = append(out, '{')
	n := 0
	write := func(m member, fromStored bool) error {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, '"')
		out = appendEscaped(out, m.key)
		out = append(out, '"', ':')
		v := m.value
		if m.loose {
			// Not compact (never the case of what dcm writes): rewrite, then compact, as
			// the map round trip did.
			if fromStored {
				v = bytes.ReplaceAll(v, bulkFrom, bulkTo)
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, v); err != nil {
				return err
			}
			out = appendEscaped(out, buf.Bytes())
			return nil
		}
		if fromStored {
			for {
				k := bytes.Index(v, bulkFrom)
				if k < 0 {
					break
				}
				out = appendEscaped(out, v[:k])
				out = appendEscaped(out, bulkTo)
				v = v[k+len(bulkFrom):]
			}
		}
		out = appendEscaped(out, v)
		return nil
	}
	i, j := 0, 0
	for i < len(h) || j < len(s) {
		var err error
		switch c := compareKeys(h, i, s, j); {
		case c < 0: // held only
			err = write(h[i], false)
			i++
		case c > 0: // stored only
			if take(s[j].key, false) {
				err = write(s[j], true)
			}
			j++
		default: // both
			if take(s[j].key, true) {
				err = write(s[j], true)
			} else {
				err = write(h[i], false)
			}
			i++
			j++
		}
		if err != nil {
			return nil, err
		}
	}
	return append(out, '}'), nil
}

// charsetKey is the DICOM JSON key of Specific Character Set.
var charsetKey = dcm.TagSpecificCharacterSet.Hex()

// compareKeys compares the keys of a[i] and b[j], a key past the end of its list being
// greater than any.
func compareKeys(a []member, i int, b []member, j int) int {
	switch {
	case i == len(a):
		return 1
	case j == len(b):
		return -1
	}
	return bytes.Compare(a[i].key, b[j].key)
}

// member is one member of a JSON object: its key (as written between the quotes) and
// its value, raw; loose when the value has white space outside its strings.
type member struct {
	key, value []byte
	loose      bool
}

var errNotObject = errors.New("dicomweb: stored metadata is not a JSON object")

// members appends the members of the JSON object doc to list, in the order written
// (dcm.ScanJSONObject: null is an object without members; the structure is checked).
func members(doc []byte, list []member) ([]member, error) {
	_, err := dcm.ScanJSONObject(doc, func(m dcm.JSONMember) bool {
		list = append(list, member{key: m.Key, value: m.Value, loose: m.Loose})
		return true
	})
	if err != nil {
		return nil, errNotObject
	}
	return list, nil
}

// byKey returns the members in ascending key order, the last of members with equal keys
// (as json.Unmarshal keeps it). DICOM JSON written by dcm is in that order already.
func byKey(list []member) []member {
	sorted := true
	for k := 1; k < len(list); k++ {
		if bytes.Compare(list[k-1].key, list[k].key) >= 0 {
			sorted = false
			break
		}
	}
	if sorted {
		return list
	}
	slices.SortStableFunc(list, func(a, b member) int { return bytes.Compare(a.key, b.key) })
	out := list[:0]
	for k, m := range list {
		if k+1 < len(list) && bytes.Equal(list[k+1].key, m.key) {
			continue // a later member of the same key wins
		}
		out = append(out, m)
	}
	return out
}

// appendEscaped appends JSON text with <, >, &, U+2028 and U+2029 escaped, as
// json.HTMLEscape (and json.Marshal) escape them.
func appendEscaped(dst, src []byte) []byte {
	const hex = "0123456789abcdef"
	start := 0
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case c == '<' || c == '>' || c == '&':
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			start = i + 1
		case c == 0xE2 && i+2 < len(src) && src[i+1] == 0x80 && src[i+2]&^1 == 0xA8:
			dst = append(dst, src[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[src[i+2]&0xF])
			i += 2
			start = i + 1
		}
	}
	return append(dst, src[start:]...)
}
