package dcm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
)

// TagDataSetTrailingPadding (FFFC,FFFC) pads a data set; its value has no meaning
// (PS3.10 §7.2).
const TagDataSetTrailingPadding Tag = 0xFFFCFFFC

// ContentDigestPrefix starts every content digest: it names the version of the
// canonical form below, so that a later form is never compared with this one.
const ContentDigestPrefix = "c1:"

// ContentDigest is the SHA-256 of a data set's content, computed while the data set is
// parsed (Options.Digest), in the same single pass, holding no value in memory that the
// parser does not keep anyway. Two encodings of the same content have the same digest:
// what an encoding chooses does not count, namely
//
//   - the File Meta Information (group 0002, whoever wrote it, whatever AE title or
//     implementation it names) and the preamble;
//   - the transfer syntax of an uncompressed object: implicit or explicit VR, little or
//     big endian (values are hashed in little endian, swapped by their VR: 2-byte units
//     for US, SS, OW, AT; 4 for UL, SL, FL, OF, OL; 8 for FD, OD, SV, UV, OV), deflated or
//     not (a deflated data set is hashed inflated);
//   - the VR itself (implicit VR has none; explicit VR may say OB or OW, UN or the real VR
//     of the same value bytes);
//   - defined or undefined lengths of sequences and items, and the lengths of group
//     length elements: group length elements (gggg,0000) are left out altogether;
//   - Data Set Trailing Padding (FFFC,FFFC) and zero bytes after the data set;
//   - the Basic Offset Table of encapsulated pixel data (the first item, which an encoder
//     may leave empty or fill).
//
// The canonical form, hashed element by element in stream order, is: the tag (group,
// then element, each 2 bytes little endian), then one byte saying what follows, then
//
//   - 'V' for a value: its length (8 bytes little endian) and its bytes;
//   - 'S' for a sequence: for each item, the tag (FFFE,E000), the item's elements in this
//     same form and the tag (FFFE,E00D); then the tag (FFFE,E0DD);
//   - 'F' for encapsulated pixel data: for each fragment after the Basic Offset Table, the
//     tag (FFFE,E000), its length (8 bytes) and its bytes; then the tag (FFFE,E0DD).
//
// The form is prefix-free (element tags never start with group FFFE, and values carry
// their length), so different contents cannot produce the same hashed stream.
// Everything else counts: value bytes as sent (padding characters included), private
// elements, pixel data, and the fragmentation of compressed pixel data. A compressed
// and an uncompressed encoding of the same image therefore differ, as do two values
// that a parser cannot recognise as the same (a private sequence of defined length in
// implicit VR, which a parser cannot tell from bytes, against the same sequence sent
// as SQ in explicit VR): a false "different" is the safe direction, since different
// content is kept, never dropped.
type ContentDigest struct {
	h       hash.Hash
	b       [16]byte
	unit    int     // swap unit of the value being written: 1 (none), 2, 4 or 8
	pend    [8]byte // bytes of an incomplete unit carried to the next Write
	npend   int
	scratch [4096]byte
}

// NewContentDigest returns a digest to pass in Options.Digest.
func NewContentDigest() *ContentDigest {
	return &ContentDigest{h: sha256.New(), unit: 1}
}

// Sum returns the digest of what was parsed: ContentDigestPrefix and 64 hex digits.
func (d *ContentDigest) Sum() string {
	return ContentDigestPrefix + hex.EncodeToString(d.h.Sum(nil))
}

// tag hashes a tag.
func (d *ContentDigest) tag(t Tag) {
	binary.LittleEndian.PutUint16(d.b[0:2], t.Group())
	binary.LittleEndian.PutUint16(d.b[2:4], t.Element())
	d.h.Write(d.b[:4])
}

// header hashes an element's tag and the kind of record that follows.
func (d *ContentDigest) header(t Tag, kind byte) {
	d.tag(t)
	d.h.Write([]byte{kind})
}

// length hashes a value length.
func (d *ContentDigest) length(n int64) {
	binary.LittleEndian.PutUint64(d.b[:8], uint64(n))
	d.h.Write(d.b[:8])
}

// value hashes a value held in memory.
func (d *ContentDigest) value(t Tag, vr string, bigEndian bool, v []byte) {
	d.header(t, 'V')
	d.length(int64(len(v)))
	d.begin(vr, bigEndian)
	d.Write(v)
	d.end()
}

// begin prepares to hash the bytes of a value of vr streamed through Write.
func (d *ContentDigest) begin(vr string, bigEndian bool) {
	d.unit, d.npend = 1, 0
	if bigEndian {
		d.unit = swapUnit(vr)
	}
}

// end finishes a streamed value: an incomplete last unit (a malformed length) is hashed
// as it is.
func (d *ContentDigest) end() {
	if d.npend > 0 {
		d.h.Write(d.pend[:d.npend])
	}
	d.unit, d.npend = 1, 0
}

// Write hashes value bytes, swapped to little endian when begin said so. It never fails.
func (d *ContentDigest) Write(p []byte) (int, error) {
	n := len(p)
	if d.unit <= 1 {
		d.h.Write(p)
		return n, nil
	}
	for d.npend > 0 && len(p) > 0 {
		d.pend[d.npend] = p[0]
		d.npend++
		p = p[1:]
		if d.npend == d.unit {
			swapUnits(d.pend[:d.unit], d.unit)
			d.h.Write(d.pend[:d.unit])
			d.npend = 0
		}
	}
	for len(p) >= d.unit {
		m := min(len(p)-len(p)%d.unit, len(d.scratch))
		copy(d.scratch[:m], p[:m])
		swapUnits(d.scratch[:m], d.unit)
		d.h.Write(d.scratch[:m])
		p = p[m:]
	}
	if len(p) > 0 { // only when nothing was pending: carry the incomplete unit
		d.npend = copy(d.pend[:], p)
	}
	return n, nil
}

// swapUnit is the size of the units whose byte order a VR's values follow.
func swapUnit(vr string) int {
	switch vr {
	case "US", "SS", "OW", "AT":
		return 2
	case "UL", "SL", "FL", "OF", "OL":
		return 4
	case "FD", "OD", "SV", "UV", "OV":
		return 8
	}
	return 1
}

// swapUnits reverses the bytes of each unit of b (len(b) a multiple of unit).
func swapUnits(b []byte, unit int) {
	for i := 0; i+unit <= len(b); i += unit {
		for j, k := i, i+unit-1; j < k; j, k = j+1, k-1 {
			b[j], b[k] = b[k], b[j]
		}
	}
}

// excludedFromDigest reports elements that say how a data set is encoded, not what it
// holds: group lengths and Data Set Trailing Padding.
func excludedFromDigest(t Tag) bool {
	return t.Element() == 0x0000 || t == TagDataSetTrailingPadding
}
