package dcm

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// Edit replaces Length bytes of a stored stream at Offset with New (Length 0: an
// insertion before the byte at Offset).
type Edit struct {
	Offset, Length int64
	New            []byte
}

// HeaderEdits returns the edits of the stored stream of f that give it the top-level
// string elements of repl, in f's own transfer syntax: an element present is replaced,
// an absent one inserted in tag order, and a nil element removes the tag; the group
// length elements (gggg,0000) of the groups touched are removed, as they would no
// longer be right. Every other byte, pixel data included, stays as stored, so the
// edited object keeps its transfer syntax (PS3.5 7.1). f may have been parsed from a
// prefix of the stored stream that ends before the first element after repl's tags
// (for example up to PixelLayout.HeaderEnd). A deflated data set cannot be edited in
// place, nor an element of undefined length replaced.
func HeaderEdits(f *File, repl map[Tag]*Element) ([]Edit, error) {
	if f.Deflated {
		return nil, fmt.Errorf("dcm: header edits: a deflated data set is not edited in place")
	}
	implicit := f.TransferSyntax == ImplicitVRLittleEndian
	var bo binary.AppendByteOrder = binary.LittleEndian
	if f.TransferSyntax == ExplicitVRBigEndian {
		bo = binary.BigEndian
	}
	headerLen := func(e *Element) int64 {
		if !implicit && longVR[e.VR] {
			return 12
		}
		return 8
	}
	end := f.Size - f.TrailingZeros // where the data set ends (or the parsed prefix)
	els := f.Dataset.Elements
	tags := make([]Tag, 0, len(repl))
	groups := map[uint16]bool{}
	for t := range repl {
		tags = append(tags, t)
		groups[t.Group()] = true
	}
	slices.Sort(tags)
	var edits []Edit
	for _, e := range els {
		if e.Tag.Element() == 0 && groups[e.Tag.Group()] && e.Length != UndefinedLength {
			start := e.Offset - headerLen(e)
			edits = append(edits, Edit{Offset: start, Length: e.Offset + int64(e.Length) - start})
		}
	}
	for _, t := range tags {
		n := repl[t]
		var enc []byte
		if n != nil {
			if n.Items != nil || n.Bulk || n.Length == UndefinedLength {
				return nil, fmt.Errorf("dcm: header edits: %s is not a plain value", t)
			}
			var err error
			if enc, err = encodeElement(n, implicit, bo); err != nil {
				return nil, err
			}
		}
		i, found := slices.BinarySearchFunc(els, t, func(e *Element, t Tag) int {
			switch {
			case e.Tag < t:
				return -1
			case e.Tag > t:
				return 1
			}
			return 0
		})
		switch {
		case found:
			e := els[i]
			if e.Length == UndefinedLength {
				return nil, fmt.Errorf("dcm: header edits: %s has an undefined length", t)
			}
			start := e.Offset - headerLen(e)
			edits = append(edits, Edit{Offset: start, Length: e.Offset + int64(e.Length) - start, New: enc})
		case n == nil:
		case i < len(els):
			edits = append(edits, Edit{Offset: els[i].Offset - headerLen(els[i]), New: enc})
		default:
			edits = append(edits, Edit{Offset: end, New: enc})
		}
	}
	// In stream order; at one offset, insertions (in tag order, as appended) before
	// the replacement of the element that starts there.
	slices.SortStableFunc(edits, func(a, b Edit) int {
		switch {
		case a.Offset != b.Offset:
			return cmpInt64(a.Offset, b.Offset)
		case (a.Length == 0) != (b.Length == 0):
			if a.Length == 0 {
				return -1
			}
			return 1
		}
		return 0
	})
	return edits, nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// encodeElement encodes one top-level element with a plain value (no byte swapping:
// string values read the same in either byte order).
func encodeElement(e *Element, implicit bool, bo binary.AppendByteOrder) ([]byte, error) {
	if !isStringVR(e.VR) {
		return nil, fmt.Errorf("dcm: header edits: %s has VR %s, not a string", e.Tag, e.VR)
	}
	v := e.Value
	if len(v)%2 == 1 {
		pad := byte(' ')
		if e.VR == "UI" {
			pad = 0
		}
		v = append(slices.Clip(v), pad)
	}
	b := make([]byte, 0, 12+len(v))
	b = bo.AppendUint16(b, e.Tag.Group())
	b = bo.AppendUint16(b, e.Tag.Element())
	switch {
	case implicit:
		b = bo.AppendUint32(b, uint32(len(v)))
	case longVR[e.VR]:
		b = append(b, e.VR[0], e.VR[1], 0, 0)
		b = bo.AppendUint32(b, uint32(len(v)))
	default:
		if len(v) > 0xFFFF {
			return nil, fmt.Errorf("dcm: header edits: %s value too long for VR %s", e.Tag, e.VR)
		}
		b = append(b, e.VR[0], e.VR[1])
		b = bo.AppendUint16(b, uint16(len(v)))
	}
	return append(b, v...), nil
}

// EditsDelta is how many bytes the edits add to the stream (negative: remove).
func EditsDelta(edits []Edit) int64 {
	var d int64
	for _, e := range edits {
		d += int64(len(e.New)) - e.Length
	}
	return d
}

// EditedReader returns r, a stored stream whose next byte is at offset start, with
// edits (in stream order, at offsets from start on) applied as it is read.
func EditedReader(r io.Reader, start int64, edits []Edit) io.Reader {
	return &editedReader{r: r, pos: start, edits: edits}
}

type editedReader struct {
	r     io.Reader
	pos   int64
	edits []Edit
	out   []byte // inserted bytes not read yet
}

func (e *editedReader) Read(p []byte) (int, error) {
	for {
		if len(e.out) > 0 {
			n := copy(p, e.out)
			e.out = e.out[n:]
			return n, nil
		}
		if len(e.edits) == 0 {
			n, err := e.r.Read(p)
			e.pos += int64(n)
			return n, err
		}
		next := &e.edits[0]
		if e.pos < next.Offset {
			if int64(len(p)) > next.Offset-e.pos {
				p = p[:next.Offset-e.pos]
			}
			n, err := e.r.Read(p)
			e.pos += int64(n)
			if err == io.EOF && e.pos < next.Offset {
				err = io.ErrUnexpectedEOF
			}
			if n > 0 || err != nil {
				if err == io.EOF {
					err = nil
				}
				return n, err
			}
			continue
		}
		if e.pos > next.Offset {
			return 0, fmt.Errorf("dcm: edited stream: edit at %d behind position %d", next.Offset, e.pos)
		}
		if next.Length > 0 {
			n, err := io.CopyN(io.Discard, e.r, next.Length)
			e.pos += n
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return 0, err
			}
		}
		e.out = next.New
		e.edits = e.edits[1:]
	}
}
