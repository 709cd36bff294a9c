package gen

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/suyashkumar/dicom"
)

// maxPixelDataLength is the largest even defined length of a PixelData
// element (the 32-bit length 0xFFFFFFFF means undefined length).
const maxPixelDataLength = 0xFFFFFFFE

// LargeMultiframe streams one X-Ray Angiographic Image Storage object of
// frames rows × cols 8-bit MONOCHROME2 frames to w, without holding more
// than two frames in memory. The pixels are those of XACine (same base
// image and moving blob); the default SeriesNumber is 7 and the SOP
// Instance UID differs from XACine's. The file meta information and every
// attribute before PixelData are written with github.com/suyashkumar/dicom;
// the PixelData element header (7FE0,0010) OB with its defined length and
// then the frames are written by hand, one at a time. The length of the
// pixel data (frames × rows × cols, plus a padding byte if odd) must fit
// in 32 bits. It returns the number of bytes written to w.
//
// For example 4096 frames of 512 × 512 make a 1 GiB instance using a few
// MB of memory.
func LargeMultiframe(w io.Writer, opt Options, frames, rows, cols int) (int64, error) {
	if err := checkDims("LargeMultiframe", frames, rows, cols); err != nil {
		return 0, err
	}
	frameLen := uint64(rows) * uint64(cols)
	total := frameLen * uint64(frames)
	length := total + total%2
	if length > maxPixelDataLength {
		return 0, fmt.Errorf("gen: LargeMultiframe: %d frames of %dx%d need %d bytes of pixel data, more than a PixelData element can hold", frames, rows, cols, total)
	}

	r := resolve(opt, kindLargeXA, "XA", "Synthetic large XA cine", "HEART")
	sop := r.instanceUID(1)
	b := &builder{}
	b.xaHeader(r, sop, frames, rows, cols)
	ds, err := b.dataset()
	if err != nil {
		return 0, err
	}

	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 1<<16)
	if err := dicom.Write(bw, ds); err != nil {
		return cw.n, fmt.Errorf("gen: LargeMultiframe: write header: %w", err)
	}
	// PixelData (7FE0,0010), Explicit VR Little Endian: tag, "OB", two
	// reserved bytes, 32-bit length.
	var hdr [12]byte
	binary.LittleEndian.PutUint16(hdr[0:], 0x7FE0)
	binary.LittleEndian.PutUint16(hdr[2:], 0x0010)
	copy(hdr[4:], "OB")
	binary.LittleEndian.PutUint32(hdr[8:], uint32(length))
	if _, err := bw.Write(hdr[:]); err != nil {
		return cw.n, err
	}
	base := xaBase(rows, cols, r.Seed)
	buf := make([]uint8, frameLen)
	for f := range frames {
		xaFrame(buf, base, f, frames, rows, cols)
		if _, err := bw.Write(buf); err != nil {
			return cw.n, err
		}
	}
	if total%2 == 1 {
		if err := bw.WriteByte(0); err != nil {
			return cw.n, err
		}
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
