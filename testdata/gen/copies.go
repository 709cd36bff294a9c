package gen

import (
	"bytes"
	"fmt"
)

// Copies makes copies of one object that differ only in their SOP Instance UID,
// rewritten in place at the same length (in the File Meta Information and the data set),
// so that benchmarks can send many distinct instances without generating each.
type Copies struct {
	data []byte
	sop  string
	at   []int
}

// NewCopies prepares copies of o. Its SOP Instance UID must occur exactly twice in its
// bytes (MediaStorageSOPInstanceUID and SOPInstanceUID).
func NewCopies(o Object) (*Copies, error) {
	c := &Copies{data: o.Data, sop: o.SOPInstanceUID}
	for off := 0; ; {
		i := bytes.Index(c.data[off:], []byte(c.sop))
		if i < 0 {
			break
		}
		c.at = append(c.at, off+i)
		off += i + len(c.sop)
	}
	if len(c.at) != 2 {
		return nil, fmt.Errorf("gen: the SOP Instance UID occurs %d times, want 2", len(c.at))
	}
	return c, nil
}

// Copy returns copy n of run: the object with a SOP Instance UID ending in run and n
// (nine digits), of the original's length.
func (c *Copies) Copy(run string, n int64) []byte {
	out := bytes.Clone(c.data)
	suffix := fmt.Sprintf("%s%09d", run, n)
	uid := c.sop[:len(c.sop)-len(suffix)] + suffix
	for _, at := range c.at {
		copy(out[at:], uid)
	}
	return out
}

// Size is the length of each copy in bytes.
func (c *Copies) Size() int { return len(c.data) }
