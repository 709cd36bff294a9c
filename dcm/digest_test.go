package dcm

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/gen"
	"github.com/lumenpacs/lumen/testdata/tools"
)

// digestOf parses a PS3.10 file with a content digest and the given bulk threshold.
func digestOf(t *testing.T, file []byte, bulk int64) string {
	t.Helper()
	d := NewContentDigest()
	if _, err := Parse(bytes.NewReader(file), &Options{Digest: d, BulkThreshold: bulk}); err != nil {
		t.Fatal(err)
	}
	return d.Sum()
}

// conv runs dcmconv with opts on file (and dcmodify edits, when given, afterwards).
func conv(t *testing.T, file []byte, tool string, opts ...string) []byte {
	t.Helper()
	bin := tools.DCMTK(t, tool)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	os.WriteFile(in, file, 0o644)
	args := append(opts, in, out)
	if tool == "dcmodify" {
		args = append(opts, "-nb", in)
		out = in
	}
	if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, opts, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestContentDigestEncodings: every encoding of the same data set has the same digest,
// whether values are kept in memory or streamed; a change of content changes it.
func TestContentDigestEncodings(t *testing.T) {
	objs, err := gen.Corpus(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, o := range objs {
		if seen[o.Modality] {
			continue
		}
		seen[o.Modality] = true
		t.Run(o.Modality, func(t *testing.T) {
			want := digestOf(t, o.Data, 0)
			if !strings.HasPrefix(want, ContentDigestPrefix) || len(want) != len(ContentDigestPrefix)+64 {
				t.Fatalf("digest %q", want)
			}
			for name, file := range map[string][]byte{
				"streamed values":   o.Data,
				"implicit VR":       conv(t, o.Data, "dcmconv", "+ti"),
				"big endian":        conv(t, o.Data, "dcmconv", "+tb"),
				"deflated":          conv(t, o.Data, "dcmconv", "+td"),
				"group lengths":     conv(t, o.Data, "dcmconv", "+g", "+ti"),
				"undefined lengths": conv(t, o.Data, "dcmconv", "-e"),
				"trailing padding":  conv(t, o.Data, "dcmconv", "+p", "512", "0"),
				"zero padding":      append(bytes.Clone(o.Data), make([]byte, 5000)...),
				"other meta":        otherMeta(t, o.Data),
			} {
				for _, bulk := range []int64{0, 64} {
					if got := digestOf(t, file, bulk); got != want {
						t.Errorf("%s (bulk threshold %d): digest %s, want %s", name, bulk, got, want)
					}
				}
			}
			changed := map[string][]byte{
				"other name":       conv(t, o.Data, "dcmodify", "-m", "(0010,0010)=Other^Name"),
				"private element":  conv(t, o.Data, "dcmodify", "-i", "(0009,0010)=LUMEN"),
				"one more element": conv(t, o.Data, "dcmodify", "-i", "(0008,0080)=Somewhere"),
			}
			if o.Modality != "SR" && o.Modality != "ECG" { // the others end with pixel data
				changed["other pixel"] = append(bytes.Clone(o.Data[:len(o.Data)-1]), o.Data[len(o.Data)-1]^1)
			}
			for name, file := range changed {
				if got := digestOf(t, file, 0); got == want {
					t.Errorf("%s: same digest as the original", name)
				}
			}
		})
	}
}

// otherMeta gives a file the meta information Lumen writes for a DIMSE data set.
func otherMeta(t *testing.T, file []byte) []byte {
	f, err := Parse(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := EncodeMeta(Meta{MediaStorageSOPClassUID: f.Meta.String(TagMediaStorageSOPClassUID), MediaStorageSOPInstanceUID: f.Meta.String(TagMediaStorageSOPInstanceUID),
		TransferSyntaxUID: f.TransferSyntax, ImplementationClassUID: "1.2.3", ImplementationVersionName: "OTHER", SourceApplicationEntityTitle: "OTHER_AE"})
	return append(m, file[f.DatasetOffset:]...)
}

// encapsulated builds an Explicit VR Little Endian file (JPEG Baseline transfer syntax)
// whose pixel data has the given Basic Offset Table and fragments.
func encapsulated(bot []byte, frags ...[]byte) []byte {
	b := EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.3", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: "1.2.840.10008.1.2.4.50", ImplementationClassUID: "1.2.3.5"})
	b = appendExplicit(b, TagSOPInstanceUID, "UI", padUID("1.2.3.4"))
	b = binary.LittleEndian.AppendUint32(b, uint32(TagPixelData>>16)|uint32(TagPixelData&0xFFFF)<<16)
	b = append(b, 'O', 'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF)
	item := func(v []byte) {
		b = append(b, 0xFE, 0xFF, 0x00, 0xE0)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	item(bot)
	for _, f := range frags {
		item(f)
	}
	return append(b, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0)
}

// TestContentDigestFragments: the Basic Offset Table does not count; the fragments'
// bytes and boundaries do.
func TestContentDigestFragments(t *testing.T) {
	f1, f2 := bytes.Repeat([]byte{1, 2}, 40), bytes.Repeat([]byte{3, 4}, 60)
	want := digestOf(t, encapsulated(nil, f1, f2), 0)
	if got := digestOf(t, encapsulated([]byte{0, 0, 0, 0, 88, 0, 0, 0}, f1, f2), 0); got != want {
		t.Fatal("a filled Basic Offset Table changed the digest")
	}
	if got := digestOf(t, encapsulated(nil, f1, f2), 64); got != want {
		t.Fatal("streamed fragments changed the digest")
	}
	if got := digestOf(t, encapsulated(nil, append(bytes.Clone(f1), f2...)), 0); got == want {
		t.Fatal("other fragment boundaries gave the same digest")
	}
	if got := digestOf(t, encapsulated(nil, f2, f1), 0); got == want {
		t.Fatal("other fragment order gave the same digest")
	}
}

// TestContentDigestSwap: big endian values are swapped to little endian however the
// stream cuts them.
func TestContentDigestSwap(t *testing.T) {
	be := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}
	for _, c := range []struct {
		vr   string
		want []byte
	}{
		{"OW", []byte{2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 17}},
		{"FL", []byte{4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 17}},
		{"FD", []byte{8, 7, 6, 5, 4, 3, 2, 1, 16, 15, 14, 13, 12, 11, 10, 9, 17}},
		{"OB", be},
	} {
		for cut := 1; cut <= len(be); cut++ {
			a, b := NewContentDigest(), NewContentDigest()
			a.begin(c.vr, true)
			for p := be; len(p) > 0; {
				n := min(cut, len(p))
				a.Write(p[:n])
				p = p[n:]
			}
			a.end()
			b.h.Write(c.want)
			if a.Sum() != b.Sum() {
				t.Fatalf("%s cut every %d bytes: wrong digest", c.vr, cut)
			}
		}
	}
}

// TestTrailingZeros: zero bytes after a complete data set are counted, not parsed;
// zeros followed by data are malformed.
func TestTrailingZeros(t *testing.T) {
	ct, err := gen.CTSeries(gen.Options{Seed: 8}, 1, 8, 8)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3, 4, 100, 4096, 10000} {
		padded := append(bytes.Clone(ct[0].Data), make([]byte, n)...)
		f, err := Parse(bytes.NewReader(padded), &Options{Size: int64(len(padded))})
		if err != nil || f.TrailingZeros != int64(n) || f.Size != int64(len(padded)) {
			t.Fatalf("%d zeros: %+v, %v", n, f, err)
		}
		_, ds := f.TransferSyntax, padded[f.DatasetOffset:]
		if f, err := ParseDataset(bytes.NewReader(ds), f.TransferSyntax, 0, nil); err != nil || f.TrailingZeros != int64(n) {
			t.Fatalf("%d zeros after a bare data set: %v", n, err)
		}
	}
	for _, n := range []int{16, 5000} {
		bad := append(append(bytes.Clone(ct[0].Data), make([]byte, n)...), 7)
		if _, err := Parse(bytes.NewReader(bad), nil); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%d zeros then data: %v", n, err)
		}
	}
}

// BenchmarkParseDigest measures what the content digest adds to parsing a 512×512 CT
// instance (its pixel data hashed instead of skipped).
func BenchmarkParseDigest(b *testing.B) {
	ct, err := gen.CTSeries(gen.Options{Seed: 9}, 1, 512, 512)
	if err != nil {
		b.Fatal(err)
	}
	data := ct[0].Data
	for _, digest := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "digest"}[digest], func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				o := &Options{}
				if digest {
					o.Digest = NewContentDigest()
				}
				if _, err := Parse(bytes.NewReader(data), o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzParseDigest: whatever the bytes, the content digest does not depend on which
// values the parser keeps in memory and which it streams.
func FuzzParseDigest(f *testing.F) {
	dir := samplesDir(f)
	for _, n := range []string{"3.dcm", "6.dcm"} {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 70000 {
			b = b[:70000]
		}
		f.Add(b)
	}
	f.Add(encapsulated([]byte{0, 0, 0, 0}, []byte{1, 2, 3, 4}, bytes.Repeat([]byte{5}, 100)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var sums []string
		for _, bulk := range []int64{0, 64} {
			d := NewContentDigest()
			if _, err := Parse(bytes.NewReader(b), &Options{Size: int64(len(b)), MaxRetained: 1 << 20, InflateFloor: 1 << 20, BulkThreshold: bulk, Digest: d}); err != nil {
				return
			}
			sums = append(sums, d.Sum())
		}
		if sums[0] != sums[1] {
			t.Fatalf("digest depends on the bulk threshold: %v", sums)
		}
	})
}

// TestDeflatedZeroPadding: zero padding inside a deflated data set counts against the
// expansion limit like any other byte.
func TestDeflatedZeroPadding(t *testing.T) {
	var body bytes.Buffer
	zw, _ := flate.NewWriter(&body, flate.BestCompression)
	zw.Write(appendExplicit(nil, TagSOPInstanceUID, "UI", padUID("1.2.3.4")))
	zeros := make([]byte, 1<<20)
	for range 64 {
		zw.Write(zeros)
	}
	zw.Close()
	b := EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.3", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: DeflatedExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.5"})
	b = append(b, body.Bytes()...)
	if _, err := Parse(bytes.NewReader(b), &Options{Size: int64(len(b))}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	// A little padding is fine.
	body.Reset()
	zw.Reset(&body)
	zw.Write(appendExplicit(nil, TagSOPInstanceUID, "UI", padUID("1.2.3.4")))
	zw.Write(make([]byte, 100))
	zw.Close()
	b = append(EncodeMeta(Meta{MediaStorageSOPClassUID: "1.2.3", MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: DeflatedExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.5"}), body.Bytes()...)
	if f, err := Parse(bytes.NewReader(b), nil); err != nil || f.TrailingZeros != 100 {
		t.Fatalf("deflated with 100 zeros: %+v, %v", f, err)
	}
}
