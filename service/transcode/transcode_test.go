package transcode_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/transcode"
	"github.com/lumenpacs/lumen/testdata/tools"
)

const pydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files"

// parsed is a PS3.10 file parsed with the bytes its offsets refer to (a deflated
// file's data set inflated).
type parsed struct {
	f    *dcm.File
	data []byte
}

func parse(t *testing.T, file []byte) parsed {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(file), &dcm.Options{BulkThreshold: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Deflated {
		return parsed{f, file}
	}
	inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(file[f.DatasetOffset:])))
	if err != nil {
		t.Fatal(err)
	}
	g, err := dcm.ParseDataset(bytes.NewReader(inflated), dcm.ExplicitVRLittleEndian, f.DatasetOffset, &dcm.Options{BulkThreshold: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	g.Meta, g.TransferSyntax = f.Meta, f.TransferSyntax
	return parsed{g, append(append([]byte(nil), file[:f.DatasetOffset]...), inflated...)}
}

// value is the value bytes of a top-level element (pixel data and other bulk values
// read from the data).
func (p parsed) value(e *dcm.Element) []byte {
	if e.Value != nil || e.Length == dcm.UndefinedLength {
		return e.Value
	}
	return p.data[e.Offset : e.Offset+int64(e.Length)]
}

// TestConvertPydicom converts every pydicom test file that parses, stored in a
// filesystem store, to each syntax Lumen produces (Explicit and Implicit VR Little
// Endian, Deflated Explicit VR Little Endian). The file from an uncompressed syntax
// (big endian included, its 32-bit OW pixel data too) has, element for element, the
// values of DCMTK's dcmconv +te; from a compressed syntax, the pixel data the decoder
// produced (compared with DCMTK and GDCM in cmd/lumen's TestPydicomRetrieve), or a
// *ConversionError with a reason. WriteDataSet writes what WriteFile does, without the
// meta information.
func TestConvertPydicom(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(pydicomFiles, "*.dcm"))
	if len(files) == 0 {
		tools.Missing(t, "python3-pydicom's test files are not installed")
	}
	dcmconv := tools.DCMTK(t, "dcmconv")
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	converted, compared, refused := 0, 0, 0
	for _, path := range files {
		name := filepath.Base(path)
		data, _ := os.ReadFile(path)
		f, err := dcm.Parse(bytes.NewReader(data), nil)
		if err != nil {
			continue // what Lumen cannot read, it does not store
		}
		if _, err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		obj := transcode.Object{Key: name, TransferSyntax: f.TransferSyntax, Size: int64(len(data))}
		var ref *parsed
		if transcode.Native(f.TransferSyntax) {
			out := filepath.Join(t.TempDir(), "ref.dcm")
			if b, err := exec.Command(dcmconv, "+te", path, out).CombinedOutput(); err != nil {
				t.Fatalf("%s: dcmconv: %v\n%s", name, err, b)
			}
			b, _ := os.ReadFile(out)
			r := parse(t, b)
			ref = &r
		}
		for _, ts := range transcode.Outputs {
			var file, set bytes.Buffer
			c, err := transcode.Prepare(ctx, st, obj, ts)
			if err == nil {
				err = c.WriteFile(&file)
			}
			var ce *transcode.ConversionError
			if errors.As(err, &ce) && ref == nil {
				refused++
				t.Logf("%s to %s: %v", name, ts, err)
				continue
			}
			if err != nil {
				t.Fatalf("%s to %s: %v", name, ts, err)
			}
			if c, err = transcode.Prepare(ctx, st, obj, ts); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteDataSet(&set); err != nil {
				t.Fatal(err)
			}
			if r := bytes.NewReader(file.Bytes()); ts == f.TransferSyntax {
				if !bytes.Equal(file.Bytes(), data) {
					t.Fatalf("%s as stored: altered", name)
				}
			} else if _, err := transcode.SkipMeta(r); err != nil || !bytes.Equal(file.Bytes()[file.Len()-r.Len():], set.Bytes()) {
				t.Fatalf("%s to %s: WriteDataSet is not WriteFile's data set (%v)", name, ts, err)
			}
			got := parse(t, file.Bytes())
			if got.f.TransferSyntax != ts {
				t.Fatalf("%s to %s: the meta information says %s", name, ts, got.f.TransferSyntax)
			}
			converted++
			if ref == nil || ts == f.TransferSyntax {
				continue
			}
			// Element for element, DCMTK's values (group lengths are left out).
			for _, e := range ref.f.Dataset.Elements {
				if e.Tag.Element() == 0 || len(e.Items) > 0 {
					continue
				}
				g := got.f.Dataset.Get(e.Tag)
				if g == nil {
					t.Fatalf("%s to %s: %s missing", name, ts, e.Tag)
				}
				if a, b := got.value(g), ref.value(e); !bytes.Equal(a, b) {
					t.Fatalf("%s to %s: %s is % x, dcmconv +te has % x", name, ts, e.Tag, head(a), head(b))
				}
			}
			compared++
		}
	}
	t.Logf("%d conversions, %d compared with dcmconv +te, %d refused", converted, compared, refused)
	if compared < 40 || converted < 100 {
		t.Fatalf("only %d conversions, %d compared", converted, compared)
	}
}

func head(b []byte) []byte { return b[:min(len(b), 16)] }

// TestRefusals: conversions that cannot be done fail in Prepare, before a byte is
// written, with a ConversionError that says why; a missing object is a StoreError.
func TestRefusals(t *testing.T) {
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join(pydicomFiles, "SC_rgb_jpeg_dcmtk.dcm"))
	if err != nil {
		tools.Missing(t, "python3-pydicom's test files are not installed")
	}
	f, _ := dcm.Parse(bytes.NewReader(data), nil)
	r, _ := f.PixelLayout().Frame(0)
	bad := bytes.Clone(data)
	clear(bad[r[0].Offset : r[0].Offset+r[0].Length])
	st.Put(ctx, "bad", bytes.NewReader(bad), int64(len(bad)))
	st.Put(ctx, "good", bytes.NewReader(data), int64(len(data)))
	jpeg := "1.2.840.10008.1.2.4.50"
	for _, c := range []struct {
		key, stored, ts, reason string
	}{
		{"bad", jpeg, transcode.ExplicitVRLittleEndian, "cannot decode: JPEG: jpegext: invalid JPEG: no SOI marker"},
		{"good", jpeg, "1.2.840.10008.1.2.4.80", "no conversion between these syntaxes"},
		{"good", jpeg, transcode.ExplicitVRBigEndian, "no conversion between these syntaxes"},
		{"good", "1.2.840.10008.1.2.4.100", transcode.ExplicitVRLittleEndian, "no decoder for the stored syntax"},
	} {
		_, err := transcode.Prepare(ctx, st, transcode.Object{Key: c.key, TransferSyntax: c.stored, Size: int64(len(data))}, c.ts)
		var ce *transcode.ConversionError
		if !errors.As(err, &ce) || ce.Reason != c.reason || !errors.Is(err, transcode.ErrNoConversion) {
			t.Errorf("%s %s to %s: %v; want the reason %q", c.key, c.stored, c.ts, err, c.reason)
		}
		if err := transcode.Check(ctx, st, transcode.Object{Key: c.key, TransferSyntax: c.stored}, c.ts); !errors.As(err, &ce) || ce.Reason != c.reason {
			t.Errorf("Check %s %s to %s: %v; want the reason %q", c.key, c.stored, c.ts, err, c.reason)
		}
	}
	_, err = transcode.Prepare(ctx, st, transcode.Object{Key: "gone", TransferSyntax: jpeg}, transcode.ExplicitVRLittleEndian)
	var se *transcode.StoreError
	if !errors.As(err, &se) || errors.Is(err, transcode.ErrNoConversion) || !strings.Contains(err.Error(), "object store") {
		t.Errorf("missing object: %v", err)
	}
}

// bigObject builds a PS3.10 object in Explicit VR Big Endian (or, deflated, in
// Deflated Explicit VR Little Endian) with frames of rows x cols 16-bit OW pixel data
// filled with noise (which deflate cannot shrink); it returns the object and the pixel
// data as stored (in the inflated data set).
func bigObject(t *testing.T, ts string, frames, rows, cols int) ([]byte, []byte) {
	t.Helper()
	var order binaryOrder = littleEndian{}
	if ts == transcode.ExplicitVRBigEndian {
		order = bigEndian{}
	}
	el := func(b []byte, tag dcm.Tag, vr string, v []byte) []byte {
		b = order.append16(b, tag.Group())
		b = order.append16(b, tag.Element())
		b = append(b, vr...)
		if vr == "OW" || vr == "OB" {
			b = append(b, 0, 0)
			b = order.append32(b, uint32(len(v)))
		} else {
			b = order.append16(b, uint16(len(v)))
		}
		return append(b, v...)
	}
	us := func(v int) []byte { return order.append16(nil, uint16(v)) }
	pixels := make([]byte, frames*rows*cols*2)
	x := uint32(1)
	for i := range pixels {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		pixels[i] = byte(x)
	}
	var ds []byte
	ds = el(ds, dcm.TagSOPClassUID, "UI", []byte("1.2.840.10008.5.1.4.1.1.7\x00"))
	ds = el(ds, dcm.TagSOPInstanceUID, "UI", []byte("1.2.3.4"))
	ds = el(ds, dcm.TagSamplesPerPixel, "US", us(1))
	ds = el(ds, dcm.TagPhotometricInterpretation, "CS", []byte("MONOCHROME2 "))
	ds = el(ds, dcm.TagNumberOfFrames, "IS", []byte(strings.TrimSpace(padIS(frames))))
	ds = el(ds, dcm.TagRows, "US", us(rows))
	ds = el(ds, dcm.TagColumns, "US", us(cols))
	ds = el(ds, dcm.TagBitsAllocated, "US", us(16))
	ds = el(ds, dcm.TagBitsStored, "US", us(16))
	ds = el(ds, dcm.TagHighBit, "US", us(15))
	ds = el(ds, dcm.TagPixelRepresentation, "US", us(0))
	ds = el(ds, dcm.TagPixelData, "OW", pixels)
	if ts == transcode.DeflatedExplicitVRLE {
		var z bytes.Buffer
		fw, _ := flate.NewWriter(&z, flate.BestSpeed)
		fw.Write(ds)
		fw.Close()
		ds = z.Bytes()
	}
	meta := dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: ts, ImplementationClassUID: "1.2.3"})
	return append(meta, ds...), pixels
}

func padIS(n int) string {
	s := strconv.Itoa(n)
	if len(s)%2 == 1 {
		s += " "
	}
	return s
}

type binaryOrder interface {
	append16([]byte, uint16) []byte
	append32([]byte, uint32) []byte
}
type littleEndian struct{}
type bigEndian struct{}

func (littleEndian) append16(b []byte, v uint16) []byte {
	return binary.LittleEndian.AppendUint16(b, v)
}
func (littleEndian) append32(b []byte, v uint32) []byte {
	return binary.LittleEndian.AppendUint32(b, v)
}
func (bigEndian) append16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func (bigEndian) append32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// TestConversionsStream converts 16 MiB objects (big endian, deflated) and reads a
// frame of the deflated one: the memory allocated meanwhile is a small part of the
// object (values are copied by ranged reads or inflated forward, never held whole),
// and the pixel data come out right (byte-swapped; inflated).
func TestConversionsStream(t *testing.T) {
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const frames, rows, cols = 8, 1024, 1024 // 16 MiB
	for _, c := range []struct{ stored, to string }{
		{transcode.ExplicitVRBigEndian, transcode.ExplicitVRLittleEndian},
		{transcode.ExplicitVRBigEndian, transcode.ImplicitVRLittleEndian},
		{transcode.DeflatedExplicitVRLE, transcode.ImplicitVRLittleEndian},
	} {
		data, pixels := bigObject(t, c.stored, frames, rows, cols)
		st.Put(ctx, c.stored, bytes.NewReader(data), int64(len(data)))
		obj := transcode.Object{Key: c.stored, TransferSyntax: c.stored, Size: int64(len(data))}
		var tail tailWriter
		allocated := allocatedBy(func() {
			conv, err := transcode.Prepare(ctx, st, obj, c.to)
			if err == nil {
				err = conv.WriteFile(&tail)
			}
			if err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s to %s: %d KiB allocated for %d KiB of pixel data", c.stored, c.to, allocated>>10, len(pixels)>>10)
		if limit := uint64(len(pixels) / 8); allocated > limit {
			t.Errorf("%s to %s: %d bytes allocated for a %d-byte object", c.stored, c.to, allocated, len(pixels))
		}
		want := bytes.Clone(pixels[len(pixels)-len(tail.last):])
		if c.stored == transcode.ExplicitVRBigEndian {
			for i := 0; i+1 < len(want); i += 2 {
				want[i], want[i+1] = want[i+1], want[i]
			}
		}
		if tail.n < int64(len(pixels)) || !bytes.Equal(tail.last, want) {
			t.Errorf("%s to %s: %d bytes written; the last pixel bytes differ", c.stored, c.to, tail.n)
		}
		if c.stored != transcode.DeflatedExplicitVRLE {
			continue
		}
		var frame []byte
		allocated = allocatedBy(func() {
			p, err := transcode.OpenPixels(ctx, st, obj)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if frame, err = p.Frame(frames - 2); err != nil {
				t.Fatal(err)
			}
		})
		fl := rows * cols * 2
		t.Logf("deflated frame %d of %d KiB: %d KiB allocated", frames-1, fl>>10, allocated>>10)
		if !bytes.Equal(frame, pixels[(frames-2)*fl:(frames-1)*fl]) || allocated > uint64(len(pixels)/3) {
			t.Errorf("deflated frame %d: %d bytes, %d allocated", frames-1, len(frame), allocated)
		}
	}
}

// tailWriter keeps the count and the last 64 KiB of what is written.
type tailWriter struct {
	n    int64
	last []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	w.last = append(w.last, p...)
	if len(w.last) > 64<<10 {
		w.last = append(w.last[:0], w.last[len(w.last)-64<<10:]...)
	}
	return len(p), nil
}

// allocatedBy is the heap memory f allocates (runtime.MemStats.TotalAlloc).
func allocatedBy(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// pydicomObject is one of pydicom's test files in a test's store, with an index record
// that corrects its patient (name Corrected^Name, ID NEWID).
type pydicomObject struct {
	name string
	data []byte
	f    *dcm.File
	in   *index.Instance
}

// storedPydicom puts every pydicom test file that parses and has a SOP Instance UID into
// a new filesystem store, under its file name.
func storedPydicom(t *testing.T) (*fs.Store, []pydicomObject) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(pydicomFiles, "*.dcm"))
	if len(files) == 0 {
		tools.Missing(t, "python3-pydicom's test files are not installed")
	}
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out []pydicomObject
	for _, path := range files {
		name := filepath.Base(path)
		data, _ := os.ReadFile(path)
		f, err := dcm.Parse(bytes.NewReader(data), nil)
		if err != nil || f.Dataset.Get(dcm.TagSOPInstanceUID) == nil {
			continue
		}
		if _, err := st.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		in := &index.Instance{}
		in.Corrected = true
		in.PatientName, in.PatientID = "Corrected^Name", "NEWID"
		in.PatientBirthDate, in.PatientSex = f.Dataset.String(dcm.TagPatientBirthDate), f.Dataset.String(dcm.TagPatientSex)
		in.IssuerOfPatientID = f.Dataset.Text(dcm.TagIssuerOfPatientID)
		in.StudyInstanceUID = f.Dataset.String(dcm.TagStudyInstanceUID)
		in.BlobKey, in.TransferSyntaxUID, in.Size = name, f.TransferSyntax, int64(len(data))
		out = append(out, pydicomObject{name, data, f, in})
	}
	return st, out
}

// TestCorrectedPydicom sends every pydicom test file that parses with a corrected
// patient name and ID (index.Instance.Corrections) in its stored syntax and in each
// syntax Lumen produces. In the stored syntax the header is edited in place: the
// output is as long as Length says, the transfer syntax is kept, and every byte from
// the pixel data on is the stored bytes; in a converted one, the output equals the
// uncorrected conversion but for the corrected attributes. Either way the corrected
// values read back.
func TestCorrectedPydicom(t *testing.T) {
	st, stored := storedPydicom(t)
	ctx := context.Background()
	edited, converted := 0, 0
	for _, o := range stored {
		name, data, f := o.name, o.data, o.f
		corrected := transcode.ObjectOf(o.in)
		plain := transcode.NewObject(name, f.TransferSyntax, int64(len(data)), nil)
		for _, ts := range append([]string{f.TransferSyntax}, transcode.Outputs...) {
			c, err := transcode.Prepare(ctx, st, corrected, ts)
			var ce *transcode.ConversionError
			if errors.As(err, &ce) {
				continue // as uncorrected: TestConvertPydicom checks the refusals
			}
			if err != nil {
				t.Fatalf("%s to %s: %v", name, ts, err)
			}
			var out bytes.Buffer
			if err := c.WriteFile(&out); err != nil {
				t.Fatalf("%s to %s: %v", name, ts, err)
			}
			got := parse(t, out.Bytes())
			if got.f.TransferSyntax != ts {
				t.Fatalf("%s to %s: written in %s", name, ts, got.f.TransferSyntax)
			}
			if n, id := got.f.Dataset.Text(dcm.TagPatientName), got.f.Dataset.Text(dcm.TagPatientID); n != "Corrected^Name" || id != "NEWID" {
				t.Fatalf("%s to %s: patient %q %q", name, ts, n, id)
			}
			if ts == f.TransferSyntax && !f.Deflated {
				edited++
				if c.Length != int64(out.Len()) {
					t.Errorf("%s: Length %d, wrote %d", name, c.Length, out.Len())
				}
				if pd := f.Dataset.Get(dcm.TagPixelData); pd != nil {
					start := pd.Offset
					gpd := got.f.Dataset.Get(dcm.TagPixelData)
					if !bytes.Equal(out.Bytes()[gpd.Offset:], data[start:]) {
						t.Errorf("%s: the bytes from the pixel data on changed", name)
					}
				}
				continue
			}
			converted++
			pc, err := transcode.Prepare(ctx, st, plain, ts)
			if err != nil {
				t.Fatalf("%s to %s uncorrected: %v", name, ts, err)
			}
			var ref bytes.Buffer
			if err := pc.WriteFile(&ref); err != nil {
				t.Fatal(err)
			}
			want := parse(t, ref.Bytes())
			wantEls := map[dcm.Tag][]byte{}
			for _, e := range want.f.Dataset.Elements {
				wantEls[e.Tag] = want.value(e)
			}
			for _, e := range got.f.Dataset.Elements {
				switch e.Tag {
				case dcm.TagPatientName, dcm.TagPatientID, dcm.TagSpecificCharacterSet:
					continue
				}
				if w, ok := wantEls[e.Tag]; !ok || !bytes.Equal(w, got.value(e)) {
					t.Errorf("%s to %s: %s differs from the uncorrected conversion", name, ts, e.Tag)
				}
			}
		}
	}
	if edited < 20 || converted < 20 {
		t.Fatalf("only %d objects edited in place and %d converted", edited, converted)
	}
	t.Logf("%d edited in place, %d converted with corrections", edited, converted)
}

// TestDataSetReader: for every object that goes as stored, plain or with its header
// corrected in place, DataSetReader reads the bytes WriteDataSet writes; a conversion
// has no such reader.
func TestDataSetReader(t *testing.T) {
	st, stored := storedPydicom(t)
	ctx := context.Background()
	read := 0
	for _, o := range stored {
		name, data, f := o.name, o.data, o.f
		for _, obj := range []transcode.Object{transcode.NewObject(name, f.TransferSyntax, int64(len(data)), nil), transcode.ObjectOf(o.in)} {
			for _, ts := range append([]string{f.TransferSyntax}, transcode.Outputs...) {
				var want bytes.Buffer
				c, err := transcode.Prepare(ctx, st, obj, ts)
				if err != nil {
					continue
				}
				if err := c.WriteDataSet(&want); err != nil {
					t.Fatalf("%s to %s: %v", name, ts, err)
				}
				if c, err = transcode.Prepare(ctx, st, obj, ts); err != nil {
					t.Fatal(err)
				}
				r, ok, err := c.DataSetReader()
				if !ok {
					if ts == f.TransferSyntax && obj.Correct == nil {
						t.Fatalf("%s as stored: no reader", name)
					}
					c.Close()
					continue
				}
				if err != nil {
					t.Fatalf("%s to %s: %v", name, ts, err)
				}
				got, err := io.ReadAll(r)
				c.Close()
				if err != nil || !bytes.Equal(got, want.Bytes()) {
					t.Fatalf("%s to %s (corrected %t): the reader's %d bytes are not WriteDataSet's %d (%v)", name, ts, obj.Correct != nil, len(got), want.Len(), err)
				}
				read++
			}
		}
	}
	if read < 50 {
		t.Fatalf("only %d readers compared", read)
	}
	t.Logf("%d readers compared", read)
}
