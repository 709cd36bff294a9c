package render_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
	"github.com/lumenpacs/lumen/dcm/codec/codectest"
	"github.com/lumenpacs/lumen/dcm/codec/jpegext"
	"github.com/lumenpacs/lumen/dcm/codec/openjpeg"
	"github.com/lumenpacs/lumen/render"
	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// renderBytes renders frame (0-based) of a PS3.10 file held in memory.
func renderBytes(t *testing.T, data []byte, frame int, o render.Options) image.Image {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(data), &dcm.Options{BulkThreshold: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	pl := f.PixelLayout()
	if pl == nil || !bytes.Equal(data[pl.HeaderEnd:pl.HeaderEnd+4], []byte{0xE0, 0x7F, 0x10, 0x00}) {
		t.Fatalf("the layout's HeaderEnd does not point at the pixel data element")
	}
	img, err := render.Frame(f.Dataset, f.TransferSyntax, pl, frame, func(off, n int64) ([]byte, error) {
		return data[off : off+n], nil
	}, o)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return img
}

// reference renders with DCMTK's dcm2pnm, an independent decoder and pipeline.
func reference(t *testing.T, data []byte, args ...string) image.Image {
	t.Helper()
	tool := "dcmj2pnm" // dcm2pnm with the JPEG and RLE decoders
	if len(args) > 0 && args[0] == "jpeg-ls" {
		tool, args = "dcml2pnm", args[1:] // the JPEG-LS one
	}
	d2p := tools.DCMTK(t, tool)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.png")
	os.WriteFile(in, data, 0o644)
	if b, err := exec.Command(d2p, append(append([]string{"+on"}, args...), in, out)...).CombinedOutput(); err != nil {
		t.Fatalf("dcm2pnm %v: %v\n%s", args, err, b)
	}
	b, _ := os.ReadFile(out)
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// diff compares two pictures channel by channel: the largest and the mean absolute
// difference.
func diff(a, b image.Image) (maxd int, mean float64, err error) {
	if a.Bounds().Size() != b.Bounds().Size() {
		return 0, 0, fmt.Errorf("sizes %v and %v", a.Bounds().Size(), b.Bounds().Size())
	}
	var sum, n float64
	for y := 0; y < a.Bounds().Dy(); y++ {
		for x := 0; x < a.Bounds().Dx(); x++ {
			ca := color.RGBAModel.Convert(a.At(a.Bounds().Min.X+x, a.Bounds().Min.Y+y)).(color.RGBA)
			cb := color.RGBAModel.Convert(b.At(b.Bounds().Min.X+x, b.Bounds().Min.Y+y)).(color.RGBA)
			for _, d := range []int{int(ca.R) - int(cb.R), int(ca.G) - int(cb.G), int(ca.B) - int(cb.B)} {
				if d < 0 {
					d = -d
				}
				maxd = max(maxd, d)
				sum += float64(d)
				n++
			}
		}
	}
	return maxd, sum / n, nil
}

func tool(t *testing.T, name string, args ...string) func([]byte) []byte {
	return func(data []byte) []byte {
		t.Helper()
		var bin string
		if name == "gdcmconv" {
			bin = tools.Require(t, name, "GDCM's libgdcm-tools")
		} else {
			bin = tools.DCMTK(t, name)
		}
		dir := t.TempDir()
		in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
		os.WriteFile(in, data, 0o644)
		if name == "dcmodify" {
			if b, err := exec.Command(bin, append(append([]string{"-nb"}, args...), in)...).CombinedOutput(); err != nil {
				t.Fatalf("%s %v: %v\n%s", name, args, err, b)
			}
			b, _ := os.ReadFile(in)
			return b
		}
		if b, err := exec.Command(bin, append(args, in, out)...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		b, _ := os.ReadFile(out)
		return b
	}
}

// checkSamples fails t unless two uncompressed objects hold the same pixel data (or,
// with equal false, different pixel data).
func checkSamples(t *testing.T, name string, got, want []byte, equal bool) {
	t.Helper()
	pixels := func(data []byte) []byte {
		f, err := dcm.Parse(bytes.NewReader(data), &dcm.Options{BulkThreshold: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		pl := f.PixelLayout()
		if pl == nil || pl.Encapsulated {
			t.Fatalf("%s: no native pixel data", name)
		}
		return data[pl.Offset : pl.Offset+int64(pl.NumberOfFrames)*pl.FrameLength]
	}
	g, w := pixels(got), pixels(want)
	if bytes.Equal(g, w) != equal {
		t.Fatalf("%s: pixel data equal %v, want %v (%d and %d bytes)", name, !equal, equal, len(g), len(w))
	}
}

// synth encodes a small secondary-capture image with the given pixel module.
func synth(t *testing.T, photometric string, spp, rows, cols int, pixels []byte, extra ...*dcm.Element) []byte {
	t.Helper()
	ds := &dcm.Dataset{}
	uid := "1.2.826.0.1.3680043.10.1234.99." + fmt.Sprint(len(pixels)) + "." + fmt.Sprint(len(photometric))
	for _, e := range []*dcm.Element{
		dcm.NewString(dcm.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"),
		dcm.NewString(dcm.TagSOPInstanceUID, "UI", uid),
		dcm.NewString(dcm.TagStudyInstanceUID, "UI", uid+".1"),
		dcm.NewString(dcm.TagSeriesInstanceUID, "UI", uid+".2"),
		dcm.NewString(dcm.TagModality, "CS", "OT"),
		dcm.NewUS(dcm.TagSamplesPerPixel, uint16(spp)),
		dcm.NewString(dcm.TagPhotometricInterpretation, "CS", photometric),
		dcm.NewUS(dcm.TagRows, uint16(rows)),
		dcm.NewUS(dcm.TagColumns, uint16(cols)),
		dcm.NewUS(dcm.TagBitsAllocated, 8),
		dcm.NewUS(dcm.TagBitsStored, 8),
		dcm.NewUS(dcm.TagHighBit, 7),
		dcm.NewUS(dcm.TagPixelRepresentation, 0),
		dcm.NewElement(dcm.TagPixelData, "OB", pixels),
	} {
		ds.Set(e)
	}
	if spp == 3 {
		ds.Set(dcm.NewUS(dcm.TagPlanarConfiguration, 0))
	}
	for _, e := range extra {
		ds.Set(e)
	}
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return append(dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: uid, TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"}), body...)
}

// spread is the standard deviation of a picture's luminance.
func spread(img image.Image) float64 {
	var sum, sq, n float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g := float64(color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y)
			sum += g
			sq += g * g
			n++
		}
	}
	m := sum / n
	return math.Sqrt(max(0, sq/n-m*m))
}

func clampByte(v float64) byte {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return byte(v + 0.5)
}

// TestGolden renders the generated corpus and variants made by DCMTK (MONOCHROME1,
// RLE, JPEG baseline, JPEG extended 8- and 12-bit, JPEG lossless, JPEG-LS) and by hand
// (YBR_FULL, YBR_FULL_422, PALETTE COLOR), and compares each with dcm2pnm's rendering
// of the same object.
func TestGolden(t *testing.T) {
	corpus, err := gen.Corpus(21)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]byte{}
	for _, o := range corpus {
		if _, ok := byKind[o.Modality]; !ok && o.NumberOfFrames > 0 {
			byKind[o.Modality] = o.Data
		}
	}
	ct, mr, xa, us := byKind["CT"], byKind["MR"], byKind["XA"], byKind["US"]
	// A 64×64 colour test pattern for the hand-made colour models.
	const n = 64
	rgb := make([]byte, 0, n*n*3)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			rgb = append(rgb, byte(x*4), byte(y*4), byte((x+y)*2))
		}
	}
	ybr := make([]byte, 0, len(rgb))
	ybr422 := make([]byte, 0, n*n*2)
	for i := 0; i < n*n; i++ {
		r, g, b := float64(rgb[3*i]), float64(rgb[3*i+1]), float64(rgb[3*i+2])
		ybr = append(ybr, clampByte(0.299*r+0.587*g+0.114*b), clampByte(-0.168736*r-0.331264*g+0.5*b+128), clampByte(0.5*r-0.418688*g-0.081312*b+128))
	}
	for i := 0; i < n*n; i += 2 {
		ybr422 = append(ybr422, ybr[3*i], ybr[3*i+3], byte((int(ybr[3*i+1])+int(ybr[3*i+4]))/2), byte((int(ybr[3*i+2])+int(ybr[3*i+5]))/2))
	}
	var lut [3][]byte
	for c := range lut {
		for i := 0; i < 256; i++ {
			lut[c] = binary.LittleEndian.AppendUint16(lut[c], uint16(((i*(c+1)*37)%256)<<8))
		}
	}
	idx := make([]byte, n*n)
	for i := range idx {
		idx[i] = byte(i % 251)
	}
	desc := func(t dcm.Tag) *dcm.Element { return dcm.NewUS(t, 256, 0, 16) }

	type goldenCase struct {
		name  string
		data  []byte
		frame int
		opts  render.Options
		args  []string
		tol   int
		ref   []byte // the object the reference renders, when not data (JPEG 2000: GDCM's decoding)
	}
	cases := []goldenCase{
		// tol is the largest channel difference allowed; the mean must stay under tol/4
		// (and 0.5 at least): rounding in the colour conversions and IDCT differences
		// between decoders for the lossy cases.
		{"CT 16-bit signed, rescale, window", ct, 0, render.Options{}, []string{"+Wi", "1"}, 1, nil},
		{"CT with a requested window", ct, 0, render.Options{Window: &render.Window{Center: 300, Width: 1500}}, []string{"+Ww", "300", "1500"}, 1, nil},
		{"CT SIGMOID", ct, 0, render.Options{Window: &render.Window{Center: 40, Width: 400, Function: "SIGMOID"}}, []string{"+Ww", "40", "400", "+Wfs"}, 1, nil},
		{"MR 16-bit unsigned", mr, 0, render.Options{}, []string{"+Wi", "1"}, 1, nil},
		{"XA 8-bit, frame 3", xa, 2, render.Options{}, []string{"+Wi", "1", "+F", "3"}, 1, nil},
		{"XA MONOCHROME1", tool(t, "dcmodify", "-m", "(0028,0004)=MONOCHROME1")(xa), 0, render.Options{}, []string{"+Wi", "1"}, 1, nil},
		{"US RGB", us, 0, render.Options{}, nil, 0, nil},
		{"CT RLE", tool(t, "dcmcrle")(ct), 0, render.Options{}, []string{"+Wi", "1"}, 1, nil},
		{"US RGB RLE", tool(t, "dcmcrle")(us), 0, render.Options{}, nil, 0, nil},
		{"XA JPEG baseline", tool(t, "dcmcjpeg", "+eb")(xa), 0, render.Options{}, []string{"+Wi", "1"}, 4, nil},
		{"US JPEG baseline (YBR_FULL_422)", tool(t, "dcmcjpeg", "+eb")(us), 0, render.Options{}, nil, 6, nil},
		{"CT JPEG lossless", tool(t, "dcmcjpeg")(ct), 0, render.Options{}, []string{"+Wi", "1"}, 1, nil},
		{"XA JPEG lossless SV1, frame 5", tool(t, "dcmcjpeg", "+e1")(xa), 4, render.Options{}, []string{"+Wi", "1", "+F", "5"}, 1, nil},
		{"US JPEG lossless", tool(t, "dcmcjpeg")(us), 0, render.Options{}, nil, 0, nil},
		// JPEG extended (process 4): DCMTK writes 12-bit DCT for the 16-bit CT and MR, and
		// 8-bit SOF1 for XA; the IDCTs differ by a stored unit here and there, which a
		// window 80 wide makes 3.2 grey levels.
		{"CT JPEG extended 12-bit", tool(t, "dcmcjpeg", "+ee")(ct), 0, render.Options{}, []string{"+Wi", "1"}, 2, nil},
		{"CT JPEG extended 12-bit, narrow window", tool(t, "dcmcjpeg", "+ee")(ct), 0, render.Options{Window: &render.Window{Center: 40, Width: 80}}, []string{"+Ww", "40", "80"}, 4, nil},
		{"MR JPEG extended 12-bit", tool(t, "dcmcjpeg", "+ee")(mr), 0, render.Options{}, []string{"+Wi", "1"}, 2, nil},
		{"XA JPEG extended 8-bit, frame 7", tool(t, "dcmcjpeg", "+ee")(xa), 6, render.Options{}, []string{"+Wi", "1", "+F", "7"}, 4, nil},
		{"CT JPEG-LS lossless", tool(t, "dcmcjpls")(ct), 0, render.Options{}, []string{"jpeg-ls", "+Wi", "1"}, 1, nil},
		{"XA JPEG-LS near-lossless, frame 2", tool(t, "dcmcjpls", "+en")(xa), 1, render.Options{}, []string{"jpeg-ls", "+Wi", "1", "+F", "2"}, 1, nil},
		{"US RGB JPEG-LS", tool(t, "dcmcjpls")(us), 0, render.Options{}, []string{"jpeg-ls"}, 0, nil},
		{"US RGB JPEG-LS sample-interleaved near-lossless", tool(t, "dcmcjpls", "+is", "+en", "+md", "2")(us), 3, render.Options{}, []string{"jpeg-ls", "+F", "4"}, 0, nil},
		{"YBR_FULL", synth(t, "YBR_FULL", 3, n, n, ybr), 0, render.Options{}, nil, 4, nil},
		{"YBR_FULL_422", synth(t, "YBR_FULL_422", 3, n, n, ybr422), 0, render.Options{}, nil, 4, nil},
		{"PALETTE COLOR", synth(t, "PALETTE COLOR", 1, n, n, idx,
			desc(dcm.NewTag(0x0028, 0x1101)), desc(dcm.NewTag(0x0028, 0x1102)), desc(dcm.NewTag(0x0028, 0x1103)),
			dcm.NewElement(dcm.NewTag(0x0028, 0x1201), "OW", lut[0]), dcm.NewElement(dcm.NewTag(0x0028, 0x1202), "OW", lut[1]), dcm.NewElement(dcm.NewTag(0x0028, 0x1203), "OW", lut[2])), 0, render.Options{}, nil, 0, nil},
	}
	// JPEG 2000, compressed and decompressed by GDCM (gdcmconv): the lossless ones are
	// also checked against the original, an entirely codec-independent reference.
	if !openjpeg.Available {
		t.Run("JPEG 2000", func(t *testing.T) {
			tools.Missing(t, "built without JPEG 2000 (go test -tags openjpeg, with libopenjp2-7-dev)")
		})
	} else {
		j2k := []struct {
			name     string
			orig     []byte
			frame    int
			args     []string
			lossless bool
			tol      int
			gdcm     []string
		}{
			{"CT JPEG 2000 lossless", ct, 0, []string{"+Wi", "1"}, true, 1, []string{"--j2k"}},
			{"XA JPEG 2000 lossless, frame 4", xa, 3, []string{"+Wi", "1", "+F", "4"}, true, 1, []string{"--j2k"}},
			{"US RGB JPEG 2000 lossless (RCT)", us, 0, nil, true, 0, []string{"--j2k"}},
			{"CT JPEG 2000 lossy (9/7)", ct, 0, []string{"+Wi", "1"}, false, 2, []string{"--j2k", "--lossy", "--irreversible", "-q", "40"}},
			{"US RGB JPEG 2000 lossy (ICT)", us, 0, nil, false, 2, []string{"--j2k", "--lossy", "--irreversible", "-q", "40"}},
		}
		for _, c := range j2k {
			comp := tool(t, "gdcmconv", c.gdcm...)(c.orig)
			raw := tool(t, "gdcmconv", "--raw")(comp)
			wantTS := map[bool]string{true: "1.2.840.10008.1.2.4.90", false: "1.2.840.10008.1.2.4.91"}[c.lossless]
			if f, err := dcm.Parse(bytes.NewReader(comp), nil); err != nil || f.TransferSyntax != wantTS {
				t.Fatalf("%s: gdcmconv %v did not write transfer syntax %s (%v)", c.name, c.gdcm, wantTS, err)
			}
			if c.lossless {
				checkSamples(t, c.name, raw, c.orig, true)
			} else {
				checkSamples(t, c.name, raw, c.orig, false) // really lossy
			}
			cases = append(cases, goldenCase{c.name, comp, c.frame, render.Options{}, c.args, c.tol, raw})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := renderBytes(t, c.data, c.frame, c.opts)
			ref := c.data
			if c.ref != nil {
				ref = c.ref
			}
			want := reference(t, ref, c.args...)
			if sd := spread(want); sd < 10 {
				t.Fatalf("the reference is nearly uniform (standard deviation %.1f): nothing to compare", sd)
			}
			maxd, mean, err := diff(got, want)
			if err != nil {
				t.Fatal(err)
			}
			if maxd > c.tol || mean > max(0.5, float64(c.tol)/4) {
				if dir := os.Getenv("LUMEN_TEST_ARTIFACTS"); dir != "" {
					os.MkdirAll(dir, 0o755)
					for name, img := range map[string]image.Image{"got": got, "want": want} {
						var b bytes.Buffer
						png.Encode(&b, img)
						os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s.png", c.name, name)), b.Bytes(), 0o644)
					}
				}
				t.Fatalf("differs from dcm2pnm: max %d (tolerance %d), mean %.2f", maxd, c.tol, mean)
			}
		})
	}
}

// TestJPEGColour decodes JPEG extended colour frames that image/jpeg cannot (12-bit, and
// 8-bit with the chroma sampled 2×1 and 1×2), written by PVRG's codec as YBR_FULL,
// through codec.Decode: they come out as RGB within 3 of dcmdjpeg's (a unit of IDCT
// rounding in Y and Cb becomes up to 2.8 in B = Y + 1.772·Cb), and the YCbCr to RGB
// conversion alone, applied to dcmdjpeg's own YCbCr samples, within 1 of IJG's
// fixed-point one.
func TestJPEGColour(t *testing.T) {
	cases := []struct {
		name     string
		prec     int
		sampling [][2]int
	}{
		{"12-bit 4:4:4", 12, [][2]int{{1, 1}, {1, 1}, {1, 1}}},
		{"12-bit 4:2:0", 12, [][2]int{{2, 2}, {1, 1}, {1, 1}}},
		{"8-bit, chroma 2x1 and 1x2", 8, [][2]int{{2, 2}, {2, 1}, {1, 2}}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const w, h = 40, 32
			stream := codectest.PVRG(t, w, h, c.prec, uint64(i), c.sampling)
			if _, err := jpeg.Decode(bytes.NewReader(stream)); err == nil {
				t.Fatal("image/jpeg decodes it: the case tests nothing")
			}
			obj := codectest.Encapsulate(t, stream, w, h, 3, c.prec)
			parse := func(b []byte) *dcm.File {
				f, err := dcm.Parse(bytes.NewReader(b), &dcm.Options{BulkThreshold: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			decode := func(b []byte) *codec.Frame {
				f, err := decodeFirstFrame(parse(b), b)
				if err != nil {
					t.Fatal(err)
				}
				if len(f.Data) != w*h*3 {
					t.Fatalf("%d samples", len(f.Data))
				}
				return f
			}
			maxDiff := func(a []int64, b []int64) (m int64) {
				for i := range a {
					m = max(m, a[i]-b[i], b[i]-a[i])
				}
				return m
			}
			got := decode(obj)
			want := decode(tool(t, "dcmdjpeg", "+px")(obj))
			if got.Photometric != "RGB" || want.Photometric != "RGB" {
				t.Fatalf("%s, dcmdjpeg %s", got.Photometric, want.Photometric)
			}
			ycc := decode(tool(t, "dcmdjpeg", "+px", "+cn")(obj))
			img := jpegext.Image{Width: w, Height: h, Components: 3, Precision: c.prec}
			for _, v := range ycc.Data {
				img.Data = append(img.Data, uint16(v))
			}
			img.ConvertYCbCr()
			conv := make([]int64, len(img.Data))
			for i, v := range img.Data {
				conv[i] = int64(v)
			}
			all, colour := maxDiff(got.Data, want.Data), maxDiff(conv, want.Data)
			t.Logf("RGB against dcmdjpeg's: max difference %d; the conversion alone: %d", all, colour)
			if all > 3 || colour > 1 {
				t.Fatalf("max difference %d, of the conversion %d", all, colour)
			}
		})
	}
}
