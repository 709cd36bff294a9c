package dcm

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// NewElement builds an element from a raw little-endian value.
func NewElement(t Tag, vr string, value []byte) *Element {
	if value == nil {
		value = []byte{}
	}
	return &Element{Tag: t, VR: vr, Length: uint32(len(value)), Value: value}
}

// NewString builds a string element (values joined with backslash and padded to even
// length: NUL for UI, space otherwise).
func NewString(t Tag, vr string, values ...string) *Element {
	v := []byte(strings.Join(values, "\\"))
	if len(v)%2 == 1 {
		if vr == "UI" {
			v = append(v, 0)
		} else {
			v = append(v, ' ')
		}
	}
	return NewElement(t, vr, v)
}

// NewUS builds a US element.
func NewUS(t Tag, values ...uint16) *Element {
	var b []byte
	for _, v := range values {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return NewElement(t, "US", b)
}

// NewSequence builds an SQ element.
func NewSequence(t Tag, items ...*Dataset) *Element {
	return &Element{Tag: t, VR: "SQ", Length: UndefinedLength, Items: items}
}

// Set replaces or adds an element, keeping tag order. The items of a sequence
// element inherit the data set's character set (see CharacterSet).
func (d *Dataset) Set(e *Element) {
	for _, it := range e.Items {
		if it != nil && it.parent == nil {
			it.parent = d
		}
	}
	at, sorted := len(d.Elements), true
	for i, x := range d.Elements {
		if x.Tag == e.Tag {
			d.Elements[i] = e
			return
		}
		if i > 0 && d.Elements[i-1].Tag > x.Tag {
			sorted = false
		}
		if x.Tag > e.Tag && at == len(d.Elements) {
			at = i
		}
	}
	if !sorted {
		d.Elements = sortedByTag(append(d.Elements, e))
		return
	}
	// Already in order (as Set leaves them): e goes in its place, in a new slice as
	// sortedByTag gives one.
	els := make([]*Element, 0, len(d.Elements)+1)
	els = append(els, d.Elements[:at]...)
	els = append(els, e)
	d.Elements = append(els, d.Elements[at:]...)
}

// Encode writes the data set in Implicit or Explicit VR Little Endian, sequences with
// undefined lengths. Elements read from a big endian stream or skipped as bulk data
// cannot be encoded.
func (d *Dataset) Encode(ts string) ([]byte, error) {
	var explicit bool
	switch ts {
	case ImplicitVRLittleEndian:
	case ExplicitVRLittleEndian:
		explicit = true
	default:
		return nil, fmt.Errorf("dcm: encode: transfer syntax %s not supported for encoding", ts)
	}
	return d.appendTo(nil, explicit)
}

func (d *Dataset) appendTo(b []byte, explicit bool) ([]byte, error) {
	for _, e := range sortedByTag(d.Elements) {
		if e.Bulk || e.bigEndian {
			return nil, fmt.Errorf("dcm: encode: element %s has no encodable value", e.Tag)
		}
		b = binary.LittleEndian.AppendUint16(b, e.Tag.Group())
		b = binary.LittleEndian.AppendUint16(b, e.Tag.Element())
		if e.VR == "SQ" {
			if explicit {
				b = append(b, 'S', 'Q', 0, 0)
			}
			b = binary.LittleEndian.AppendUint32(b, UndefinedLength)
			for _, it := range e.Items {
				b = append(b, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF)
				var err error
				if b, err = it.appendTo(b, explicit); err != nil {
					return nil, err
				}
				b = append(b, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0)
			}
			b = append(b, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
			continue
		}
		v := e.Value
		if len(v)%2 == 1 {
			v = append(slices.Clone(v), 0)
		}
		switch {
		case !explicit:
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		case longVR[e.VR]:
			b = append(b, e.VR[0], e.VR[1], 0, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		default:
			if len(v) > 0xFFFF {
				return nil, fmt.Errorf("dcm: encode: %s value of %d bytes too long for VR %s", e.Tag, len(v), e.VR)
			}
			b = append(b, e.VR[0], e.VR[1])
			b = binary.LittleEndian.AppendUint16(b, uint16(len(v)))
		}
		b = append(b, v...)
	}
	return b, nil
}

// NewValue builds an element of any non-sequence VR from values written as strings:
// binary numeric VRs (US, SS, UL, SL, FL, FD) are parsed and encoded little endian, all
// others are string VRs (see NewString). A value that does not parse as the VR's number
// is an error.
func NewValue(t Tag, vr string, values ...string) (*Element, error) {
	var b []byte
	for _, v := range values {
		switch vr {
		case "US", "SS":
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("dcm: %s value %q: %w", vr, v, err)
			}
			b = binary.LittleEndian.AppendUint16(b, uint16(n))
		case "UL", "SL":
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("dcm: %s value %q: %w", vr, v, err)
			}
			b = binary.LittleEndian.AppendUint32(b, uint32(n))
		case "FL", "FD":
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("dcm: %s value %q: %w", vr, v, err)
			}
			if vr == "FL" {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f)))
			} else {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
			}
		default:
			return NewString(t, vr, values...), nil
		}
	}
	return NewElement(t, vr, b), nil
}
