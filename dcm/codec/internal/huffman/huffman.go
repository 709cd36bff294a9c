package huffman

import (
	"errors"
	"fmt"

	"github.com/lumenpacs/lumen/dcm/codec/internal/jpegmarker"
)

// lutBits is how many leading bits the fast lookup table decodes at once.
const lutBits = 9

// Table is one Huffman decoding table (T.81 C.2 and F.2.2.3).
type Table struct {
	// lut decodes codes of up to lutBits bits from the next lutBits bits:
	// length<<8 | symbol, 0 when the code is longer.
	lut     [1 << lutBits]uint16
	maxCode [18]int32 // largest code of each length, -1 when none
	valPtr  [17]int32 // index in vals of the first symbol of each length
	minCode [17]int32 // smallest code of each length
	vals    [256]uint8
	defined bool
}

// Defined reports whether a DHT segment has defined the table.
func (h *Table) Defined() bool { return h.defined }

// Build makes the table from the number of codes of each length 1..16 (BITS) and the
// symbols in code order (HUFFVAL). Code lengths that need more codes than there are
// (an over-subscribed code) are refused.
func (h *Table) Build(counts *[16]byte, vals []byte) error {
	total := 0
	for _, c := range counts {
		total += int(c)
	}
	if total > 256 || len(vals) < total {
		return fmt.Errorf("a Huffman table of %d symbols", total)
	}
	*h = Table{}
	code, k := int32(0), int32(0)
	for l := 1; l <= 16; l++ {
		n := int32(counts[l-1])
		if code+n > 1<<l {
			return fmt.Errorf("over-subscribed Huffman table: %d codes of length %d do not fit", n, l)
		}
		h.valPtr[l], h.minCode[l], h.maxCode[l] = k, code, code+n-1
		if n == 0 {
			h.maxCode[l] = -1
		}
		for i := int32(0); i < n; i++ {
			if l <= lutBits {
				first := int(code) << (lutBits - l)
				for x := 0; x < 1<<(lutBits-l); x++ {
					h.lut[first+x] = uint16(l)<<8 | uint16(vals[k])
				}
			}
			code++
			k++
		}
		code <<= 1
	}
	h.maxCode[17] = 0x7FFFFFFF
	copy(h.vals[:], vals[:total])
	h.defined = true
	return nil
}

// ParseDHT reads the tables of a DHT segment into dc (class 0) and ac (class 1). When
// ac is nil, AC tables are read and dropped (lossless JPEG uses none).
func ParseDHT(seg []byte, dc, ac *[4]Table) error {
	for len(seg) > 0 {
		if len(seg) < 17 {
			return fmt.Errorf("short DHT")
		}
		class, id := seg[0]>>4, int(seg[0]&15)
		if class > 1 || id > 3 {
			return fmt.Errorf("DHT: table class %d, id %d", class, id)
		}
		var counts [16]byte
		copy(counts[:], seg[1:17])
		total := 0
		for _, c := range counts {
			total += int(c)
		}
		if len(seg) < 17+total {
			return fmt.Errorf("DHT of %d symbols in %d bytes", total, len(seg))
		}
		var t Table
		if err := t.Build(&counts, seg[17:17+total]); err != nil {
			return err
		}
		switch {
		case class == 0:
			dc[id] = t
		case ac != nil:
			ac[id] = t
		}
		seg = seg[17+total:]
	}
	return nil
}

// ErrCode reports bits that are no code of the table.
var ErrCode = errors.New("invalid Huffman code")

// Reader reads the entropy-coded data of a scan bit by bit (most significant first),
// removing byte stuffing (0xFF 0x00). At a marker, or the end of the data, it stops and
// feeds zero bits; Overrun says whether any of those were consumed.
type Reader struct {
	jpegmarker.Reader        // the stream and the read position
	acc               uint64 // bit buffer, next bit in the top position
	nacc              int    // valid bits in acc
	ended             bool   // the entropy-coded segment ended at a marker or the data's end
	fed               int    // zero bytes fed since the segment ended
}

// fill tops the bit buffer up to more than 56 bits.
func (r *Reader) fill() {
	for r.nacc <= 56 {
		var b byte
		if !r.ended && r.Pos < len(r.Data) {
			b = r.Data[r.Pos]
			if b != 0xFF {
				r.Pos++
			} else if r.Pos+1 < len(r.Data) && r.Data[r.Pos+1] == 0x00 {
				r.Pos += 2
			} else {
				r.ended, b = true, 0 // a marker: left for the caller
			}
		} else {
			r.ended = true
		}
		if r.ended {
			r.fed++
		}
		r.acc |= uint64(b) << uint(56-r.nacc)
		r.nacc += 8
	}
}

// Reset drops the buffered bits (the padding at the end of an entropy-coded segment)
// before reading the next segment, after a restart marker.
func (r *Reader) Reset() {
	r.acc, r.nacc, r.ended, r.fed = 0, 0, false, 0
}

// Overrun reports whether the bits consumed since the last Reset run past the end of
// the entropy-coded segment: the data is truncated or corrupt.
func (r *Reader) Overrun() bool { return r.nacc < 8*r.fed }

// Receive reads n bits (0 ≤ n ≤ 16) as an unsigned integer (RECEIVE, F.2.2.4).
func (r *Reader) Receive(n int) int {
	if n == 0 {
		return 0
	}
	if r.nacc < n {
		r.fill()
	}
	v := int(r.acc >> uint(64-n))
	r.acc <<= uint(n)
	r.nacc -= n
	return v
}

// ReceiveExtend reads an n-bit magnitude category value and extends its sign (RECEIVE
// and EXTEND, F.2.2.1), for 1 ≤ n ≤ 16.
func (r *Reader) ReceiveExtend(n int) int {
	v := r.Receive(n)
	if v < 1<<uint(n-1) {
		v += (-1 << uint(n)) + 1
	}
	return v
}

// Decode reads one symbol (DECODE, F.2.2.3).
func (r *Reader) Decode(h *Table) (int, error) {
	if r.nacc < 16 {
		r.fill()
	}
	if e := h.lut[r.acc>>(64-lutBits)]; e != 0 {
		n := int(e >> 8)
		r.acc <<= uint(n)
		r.nacc -= n
		return int(e & 0xFF), nil
	}
	for l := lutBits + 1; l <= 16; l++ {
		code := int32(r.acc >> uint(64-l))
		if code <= h.maxCode[l] {
			r.acc <<= uint(l)
			r.nacc -= l
			return int(h.vals[h.valPtr[l]+code-h.minCode[l]]), nil
		}
	}
	return 0, ErrCode
}
