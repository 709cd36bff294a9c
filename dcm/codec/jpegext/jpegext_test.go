package jpegext_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec/codectest"
	"github.com/lumenpacs/lumen/dcm/codec/jpegext"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

func decode(b []byte) ([]uint16, error) {
	img, err := jpegext.Decode(b, jpegext.Limits{})
	if err != nil {
		return nil, err
	}
	return img.Data, nil
}

// dcmdjpeg is the reference decoder: DCMTK's, which is IJG's libjpeg (8 and 12 bits,
// islow IDCT, fancy upsampling), without colour conversion, colour by pixel.
var dcmdjpeg = []string{"dcmdjpeg", "+cn", "+px"}

// TestDecodeMatchesDCMTK compresses the generated corpus with DCMTK's dcmcjpeg (extended
// 12-bit for the 16-bit CT and MR, extended 8- and forced 12-bit and baseline for XA and
// the RGB US, with 4:2:2, 4:4:4 and 4:1:1 chroma, YCbCr and RGB) and compares every
// decoded sample with dcmdjpeg's: IJG's integer IDCT (islow) and the exact one
// differ by a unit in some samples.
func TestDecodeMatchesDCMTK(t *testing.T) {
	c := func(args ...string) codectest.Case {
		return codectest.Case{Args: args, Near: 2, Mean: 0.1, Reference: dcmdjpeg}
	}
	colour := func(args ...string) codectest.Case {
		k := c(args...)
		k.Modalities = []string{"US"}
		return k
	}
	stats := codectest.RoundTrip(t, "dcmcjpeg", 31, []codectest.Case{
		c("+ee"),
		c("+ee", "+q", "60"),
		c("+ee", "+bt"),
		c("+eb"),
		colour("+eb", "+s4"),
		colour("+ee", "+bt", "+s4"),
		colour("+ee", "+n1"),
		colour("+ee", "+bt", "+np"),
		colour("+ee", "+cr"),
		colour("+ee", "+bt", "+cr", "+q", "75"),
	}, decode, nil)
	var maxd int
	var sum float64
	var n int
	for _, s := range stats {
		maxd = max(maxd, s.Max)
		sum += s.Mean * float64(s.Samples)
		n += s.Samples
	}
	t.Logf("all cases: %d samples, max difference %d, mean %.4f", n, maxd, sum/float64(n))
}

// reference decodes a JPEG frame with dcmdjpeg +cn: its samples, interleaved.
func reference(t testing.TB, stream []byte, w, h, spp, precision int) []uint16 {
	t.Helper()
	frames, ba := codectest.Decompress(t, dcmdjpeg[0], dcmdjpeg[1:], codectest.Encapsulate(t, stream, w, h, spp, precision))
	var out []uint16
	for i := 0; i < w*h*spp; i++ {
		if ba == 16 {
			out = append(out, binary.LittleEndian.Uint16(frames[0][2*i:]))
		} else {
			out = append(out, uint16(frames[0][i]))
		}
	}
	return out
}

func compare(t *testing.T, name string, got, want []uint16, near int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d", name, len(got), len(want))
	}
	maxd, sum := 0, 0
	for i := range got {
		d := int(got[i]) - int(want[i])
		if d < 0 {
			d = -d
		}
		if d > near {
			t.Fatalf("%s: sample %d is %d, dcmdjpeg %d", name, i, got[i], want[i])
		}
		maxd = max(maxd, d)
		sum += d
	}
	mean := float64(sum) / float64(len(got))
	t.Logf("%s: %d samples, max difference %d, mean %.4f", name, len(got), maxd, mean)
	if mean > 0.1 {
		t.Fatalf("%s: mean difference %.4f", name, mean)
	}
}

// TestDecodeMatchesDCMTKOnPVRG decodes frames written by the PVRG codec, which DCMTK
// cannot write: 12-bit colour with several sampling factors, restart intervals, scans
// of one component each, odd sizes; each against dcmdjpeg's decoding. (4:2:2, which
// PVRG's Huffman table optimizer fails on, is among TestDecodeMatchesDCMTK's cases.)
func TestDecodeMatchesDCMTKOnPVRG(t *testing.T) {
	type tc struct {
		name        string
		w, h, prec  int
		sampling    [][2]int
		opts        []string
		interleaved bool
	}
	cases := []tc{
		{"12-bit gray", 64, 48, 12, [][2]int{{1, 1}}, nil, true},
		{"12-bit gray, odd size, restart every 3 MCUs", 61, 37, 12, [][2]int{{1, 1}}, []string{"-r", "3"}, true},
		{"12-bit gray, restart every MCU", 40, 24, 12, [][2]int{{1, 1}}, []string{"-r", "1"}, true},
		{"8-bit gray, restart every 5 MCUs", 45, 33, 8, [][2]int{{1, 1}}, []string{"-r", "5"}, true},
		{"12-bit 4:4:4", 40, 32, 12, [][2]int{{1, 1}, {1, 1}, {1, 1}}, nil, true},
		{"12-bit 4:2:0 (h2v2), restart every 2 MCUs", 50, 35, 12, [][2]int{{2, 2}, {1, 1}, {1, 1}}, []string{"-r", "2"}, true},
		{"12-bit h1v2", 32, 40, 12, [][2]int{{1, 2}, {1, 1}, {1, 1}}, nil, true},
		{"12-bit 4:1:1 (h4v1)", 67, 17, 12, [][2]int{{4, 1}, {1, 1}, {1, 1}}, nil, true},
		{"8-bit h2v2, chroma 2x1 and 1x2", 48, 48, 8, [][2]int{{2, 2}, {2, 1}, {1, 2}}, nil, true},
		{"12-bit 4:2:0, one scan per component", 50, 35, 12, [][2]int{{2, 2}, {1, 1}, {1, 1}}, []string{"-n"}, false},
		{"12-bit 4:4:4, one scan per component, restart", 33, 20, 12, [][2]int{{1, 1}, {1, 1}, {1, 1}}, []string{"-n", "-r", "4"}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stream := codectest.PVRG(t, c.w, c.h, c.prec, uint64(i), c.sampling, c.opts...)
			nc := len(c.sampling)
			img, err := jpegext.Decode(stream, jpegext.Limits{Width: c.w, Height: c.h, Components: nc})
			if err != nil {
				t.Fatal(err)
			}
			if img.Precision != c.prec {
				t.Fatalf("precision %d", img.Precision)
			}
			compare(t, c.name, img.Data, reference(t, stream, c.w, c.h, nc, c.prec), 2)
		})
	}
}

// TestNarrowColour compresses RGB images 1 to 9 pixels wide with dcmcjpeg (4:2:2, 8 and
// 12 bits): chroma one or two samples wide is replicated, wider chroma filtered, as
// libjpeg does; every sample against dcmdjpeg's.
func TestNarrowColour(t *testing.T) {
	bin := tools.DCMTK(t, "dcmcjpeg")
	dir := t.TempDir()
	for w := 1; w <= 9; w++ {
		const h = 24
		px := make([]byte, 0, w*h*3)
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				px = append(px, byte(x*60+y*3), byte(255-x*50), byte((x*y*37)%256))
			}
		}
		for _, args := range [][]string{{"+eb"}, {"+ee", "+bt"}} {
			in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
			os.WriteFile(in, nativeRGB(t, w, h, px), 0o644)
			if b, err := exec.Command(bin, append(args, in, out)...).CombinedOutput(); err != nil {
				t.Fatalf("dcmcjpeg %v: %v %s", args, err, b)
			}
			data, _ := os.ReadFile(out)
			frame := codectest.Frames(t, data)[0]
			img, err := jpegext.Decode(frame, jpegext.Limits{Width: w, Height: h, Components: 3})
			if err != nil {
				t.Fatalf("%d wide %v: %v", w, args, err)
			}
			frames, ba := codectest.Decompress(t, dcmdjpeg[0], dcmdjpeg[1:], data)
			want := make([]uint16, w*h*3)
			for i := range want {
				if ba == 16 {
					want[i] = binary.LittleEndian.Uint16(frames[0][2*i:])
				} else {
					want[i] = uint16(frames[0][i])
				}
			}
			compare(t, fmt.Sprintf("%d wide %v", w, args), img.Data, want, 1)
		}
	}
}

// nativeRGB makes a Secondary Capture object of 8-bit RGB pixels.
func nativeRGB(t *testing.T, w, h int, px []byte) []byte {
	const uid = "1.2.826.0.1.3680043.10.1234.99.52"
	ds := &dcm.Dataset{}
	for _, e := range []*dcm.Element{
		dcm.NewString(dcm.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		dcm.NewString(dcm.TagSOPInstanceUID, "UI", uid),
		dcm.NewString(dcm.TagStudyInstanceUID, "UI", uid+".1"),
		dcm.NewString(dcm.TagSeriesInstanceUID, "UI", uid+".2"),
		dcm.NewString(dcm.TagModality, "CS", "OT"),
		dcm.NewUS(dcm.TagSamplesPerPixel, 3),
		dcm.NewString(dcm.TagPhotometricInterpretation, "CS", "RGB"),
		dcm.NewUS(dcm.TagPlanarConfiguration, 0),
		dcm.NewUS(dcm.TagRows, uint16(h)),
		dcm.NewUS(dcm.TagColumns, uint16(w)),
		dcm.NewUS(dcm.TagBitsAllocated, 8),
		dcm.NewUS(dcm.TagBitsStored, 8),
		dcm.NewUS(dcm.TagHighBit, 7),
		dcm.NewUS(dcm.TagPixelRepresentation, 0),
		dcm.NewElement(dcm.TagPixelData, "OB", append(px, make([]byte, len(px)%2)...)),
	} {
		ds.Set(e)
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: uid, TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...)
}

// TestPydicomFiles decodes pydicom's 12-bit JPEG files and compares them with dcmdjpeg.
func TestPydicomFiles(t *testing.T) {
	for _, name := range []string{"JPEG-lossy.dcm", "JPGExtended.dcm"} {
		data, err := os.ReadFile(filepath.Join("/usr/lib/python3/dist-packages/pydicom/data/test_files", name))
		if err != nil {
			tools.Missing(t, "python3-pydicom's test files are not installed: "+err.Error())
		}
		frame := codectest.Frames(t, data)[0]
		img, err := jpegext.Decode(frame, jpegext.Limits{Width: 256, Height: 1024, Components: 1})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		frames, _ := codectest.Decompress(t, dcmdjpeg[0], dcmdjpeg[1:], data)
		want := make([]uint16, len(img.Data))
		for i := range want {
			want[i] = binary.LittleEndian.Uint16(frames[0][2*i:])
		}
		compare(t, name, img.Data, want, 2)
	}
}

// corpusStreams returns JPEG extended frames for the failure and fuzz tests, one of each
// modality of the generated corpus, compressed by dcmcjpeg +ee (none when DCMTK is not
// installed): 12-bit CT and MR, 8-bit XA and colour US.
func corpusStreams(t testing.TB) [][]byte {
	var out [][]byte
	objs, err := gen.Corpus(5)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("dcmcjpeg")
	if err != nil {
		return nil
	}
	dir := t.TempDir()
	seen := map[string]bool{}
	for _, o := range objs {
		if o.NumberOfFrames == 0 || seen[o.Modality] {
			continue
		}
		seen[o.Modality] = true
		in, res := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
		os.WriteFile(in, o.Data, 0o644)
		if b, err := exec.Command(bin, "+ee", in, res).CombinedOutput(); err != nil {
			t.Fatalf("dcmcjpeg: %v %s", err, b)
		}
		b, _ := os.ReadFile(res)
		out = append(out, codectest.Frames(t, b)[0])
	}
	return out
}

// TestDecodeRejects feeds broken and unsupported streams: each gives a precise error,
// never a panic or a picture made of padding.
func TestDecodeRejects(t *testing.T) {
	streams := corpusStreams(t)
	if len(streams) == 0 {
		tools.Missing(t, "dcmcjpeg (DCMTK) not installed")
	}
	ct := streams[0]
	for _, b := range [][]byte{nil, {0xFF, 0xD8}, {0xFF, 0xD8, 0xFF, 0xC1, 0, 2}, bytes.Repeat([]byte{0xFF}, 64), ct[:len(ct)/2]} {
		if _, err := jpegext.Decode(b, jpegext.Limits{}); !errors.Is(err, jpegext.ErrFormat) {
			t.Fatalf("%.40x: %v", b, err)
		}
	}
	// Truncated in the entropy-coded data: an error naming it, not zeros.
	if _, err := jpegext.Decode(append(ct[:len(ct)*3/4:len(ct)*3/4], 0xFF, 0xD9), jpegext.Limits{}); !errors.Is(err, jpegext.ErrFormat) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}
	// Every cut of the stream fails cleanly (or, at the very end, decodes).
	for n := 0; n < len(ct); n += 7 {
		jpegext.Decode(ct[:n], jpegext.Limits{})
	}
	// The geometry the caller expects is checked on the header.
	if _, err := jpegext.Decode(ct, jpegext.Limits{Width: 63}); err == nil {
		t.Fatal("a 64-column frame decoded with Width 63")
	}
	if _, err := jpegext.Decode(ct, jpegext.Limits{MaxSamples: 1000}); err == nil {
		t.Fatal("4,096 samples decoded with MaxSamples 1000")
	}
	// Other processes: unsupported, not invalid.
	sof := bytes.Index(ct, []byte{0xFF, 0xC1})
	for _, m := range []byte{0xC2, 0xC3, 0xC5, 0xC9} {
		b := append([]byte(nil), ct...)
		b[sof+1] = m
		if _, err := jpegext.Decode(b, jpegext.Limits{}); !errors.Is(err, jpegext.ErrUnsupported) {
			t.Fatalf("SOF%d: %v", m-0xC0, err)
		}
	}
	// A precision DCT does not have.
	b := append([]byte(nil), ct...)
	b[sof+4] = 16
	if _, err := jpegext.Decode(b, jpegext.Limits{}); !errors.Is(err, jpegext.ErrFormat) {
		t.Fatalf("16-bit DCT: %v", err)
	}
	// A header announcing 4096×4096 over a few kilobytes: refused before anything is
	// allocated.
	b = append([]byte(nil), ct...)
	copy(b[sof+5:], []byte{0x10, 0x00, 0x10, 0x00})
	if _, err := jpegext.Decode(b, jpegext.Limits{}); !errors.Is(err, jpegext.ErrFormat) || !strings.Contains(err.Error(), "cannot hold") {
		t.Fatalf("4096×4096 in %d bytes: %v", len(b), err)
	}
	// A wrong restart marker.
	stream := codectest.PVRG(t, 40, 24, 12, 1, [][2]int{{1, 1}}, "-r", "1")
	if _, err := jpegext.Decode(stream, jpegext.Limits{}); err != nil {
		t.Fatal(err)
	}
	rst := bytes.Index(stream, []byte{0xFF, 0xD1})
	stream[rst+1] = 0xD3
	if _, err := jpegext.Decode(stream, jpegext.Limits{}); !errors.Is(err, jpegext.ErrFormat) {
		t.Fatalf("RST3 for RST1: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range corpusStreams(f) {
		f.Add(s)
	}
	for _, name := range []string{"JPGExtended.dcm"} {
		if data, err := os.ReadFile(filepath.Join("/usr/lib/python3/dist-packages/pydicom/data/test_files", name)); err == nil {
			f.Add(codectest.Frames(f, data)[0])
		}
	}
	if _, err := exec.LookPath("pvrg-jpeg"); err == nil {
		f.Add(codectest.PVRG(f, 34, 35, 12, 1, [][2]int{{2, 2}, {1, 1}, {1, 1}}, "-r", "1"))
		f.Add(codectest.PVRG(f, 21, 19, 8, 2, [][2]int{{1, 1}, {1, 1}, {1, 1}}, "-n", "-r", "2"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := jpegext.Decode(b, jpegext.Limits{MaxSamples: 1 << 20})
		if err == nil && len(img.Data) != img.Width*img.Height*img.Components {
			t.Fatalf("%d samples for %dx%dx%d", len(img.Data), img.Width, img.Height, img.Components)
		}
	})
}

// BenchmarkDecode12 decodes a 512×512 12-bit CT frame written by dcmcjpeg +ee.
func BenchmarkDecode12(b *testing.B) {
	objs, err := gen.CTSeries(gen.Options{Seed: 3}, 1, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	bin := tools.DCMTK(b, "dcmcjpeg")
	dir := b.TempDir()
	in, res := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	os.WriteFile(in, objs[0].Data, 0o644)
	if out, err := exec.Command(bin, "+ee", in, res).CombinedOutput(); err != nil {
		b.Fatalf("dcmcjpeg: %v %s", err, out)
	}
	data, _ := os.ReadFile(res)
	frame := codectest.Frames(b, data)[0]
	if h, err := jpegext.ReadHeader(frame); err != nil || h.Precision != 12 || h.Width != 512 {
		b.Fatalf("%+v %v", h, err)
	}
	b.SetBytes(512 * 512 * 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := jpegext.Decode(frame, jpegext.Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
