package dcm

import (
	"fmt"
	"testing"
)

// TestTagHex checks the eight upper-case hex digits of DICOM JSON keys.
func TestTagHex(t *testing.T) {
	for _, v := range []uint32{0, 1, 0x00100010, 0x0008103E, 0x7FE00010, 0xABCDEF12, 0xFFFFFFFF} {
		if got, want := Tag(v).Hex(), fmt.Sprintf("%08X", v); got != want {
			t.Errorf("Tag(%#x).Hex() = %s, want %s", v, got, want)
		}
	}
}

// TestSetOrder checks that Set keeps the elements in ascending tag order, replaces an
// element of the same tag, sorts elements that were out of order, and never writes
// into the slice a caller kept.
func TestSetOrder(t *testing.T) {
	tags := func(d *Dataset) string {
		var s []string
		for _, e := range d.Elements {
			s = append(s, e.Tag.Hex()+"="+string(e.Value))
		}
		return fmt.Sprint(s)
	}
	el := func(tag Tag, v string) *Element { return NewElement(tag, "LO", []byte(v)) }
	d := &Dataset{}
	for _, c := range []struct {
		tag  Tag
		v    string
		want string
	}{
		{0x00100020, "a", "[00100020=a]"},
		{0x00080050, "b", "[00080050=b 00100020=a]"},
		{0x00200010, "c", "[00080050=b 00100020=a 00200010=c]"},
		{0x00100010, "d", "[00080050=b 00100010=d 00100020=a 00200010=c]"},
		{0x00100020, "e", "[00080050=b 00100010=d 00100020=e 00200010=c]"},
	} {
		kept := d.Elements
		before := tags(&Dataset{Elements: kept})
		d.Set(el(c.tag, c.v))
		if got := tags(d); got != c.want {
			t.Fatalf("after Set(%s): %s, want %s", c.tag.Hex(), got, c.want)
		}
		if c.v != "e" && tags(&Dataset{Elements: kept}) != before {
			t.Fatalf("Set(%s) changed the slice held before it", c.tag.Hex())
		}
	}
	unsorted := &Dataset{Elements: []*Element{el(0x00200010, "x"), el(0x00080050, "y")}}
	unsorted.Set(el(0x00100010, "z"))
	if got, want := tags(unsorted), "[00080050=y 00100010=z 00200010=x]"; got != want {
		t.Fatalf("unsorted: %s, want %s", got, want)
	}
}
