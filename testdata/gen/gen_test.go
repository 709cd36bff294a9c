package gen

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	"github.com/suyashkumar/dicom"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// parse parses a PS3.10 file.
func parse(t *testing.T, data []byte, opts ...dicom.ParseOption) dicom.Dataset {
	t.Helper()
	ds, err := dicom.Parse(bytes.NewReader(data), int64(len(data)), nil, opts...)
	if err != nil {
		t.Fatalf("dicom.Parse: %v", err)
	}
	return ds
}

// find returns the element with tag tg among elems, or nil.
func find(elems []*dicom.Element, tg tag.Tag) *dicom.Element {
	for _, e := range elems {
		if e.Tag == tg {
			return e
		}
	}
	return nil
}

func mustFind(t *testing.T, elems []*dicom.Element, tg tag.Tag) *dicom.Element {
	t.Helper()
	e := find(elems, tg)
	if e == nil {
		t.Fatalf("missing element %s", tg)
	}
	return e
}

// str returns the (first) string value of tg.
func str(t *testing.T, elems []*dicom.Element, tg tag.Tag) string {
	t.Helper()
	v := dicom.MustGetStrings(mustFind(t, elems, tg).Value)
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// num returns the first integer value of tg.
func num(t *testing.T, elems []*dicom.Element, tg tag.Tag) int {
	t.Helper()
	v := dicom.MustGetInts(mustFind(t, elems, tg).Value)
	if len(v) == 0 {
		t.Fatalf("%s has no value", tg)
	}
	return v[0]
}

// items returns the items of sequence tg.
func items(t *testing.T, elems []*dicom.Element, tg tag.Tag) [][]*dicom.Element {
	t.Helper()
	e := mustFind(t, elems, tg)
	seq, ok := e.Value.GetValue().([]*dicom.SequenceItemValue)
	if !ok {
		t.Fatalf("%s is not a sequence: %T", tg, e.Value.GetValue())
	}
	var out [][]*dicom.Element
	for _, it := range seq {
		out = append(out, it.GetValue().([]*dicom.Element))
	}
	return out
}

var uidPattern = regexp.MustCompile(`^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$`)

// checkCommon checks the meta header and the identifying attributes that
// every object must carry, and that they match the descriptor.
func checkCommon(t *testing.T, o Object, ds dicom.Dataset) {
	t.Helper()
	el := ds.Elements
	if !bytes.Equal(o.Data[128:132], []byte("DICM")) {
		t.Errorf("%s: no DICM magic", o.Name)
	}
	if num(t, el, tag.FileMetaInformationGroupLength) <= 0 {
		t.Errorf("%s: bad group length", o.Name)
	}
	if v := dicom.MustGetBytes(mustFind(t, el, tag.FileMetaInformationVersion).Value); !bytes.Equal(v, []byte{0, 1}) {
		t.Errorf("%s: FileMetaInformationVersion = %v", o.Name, v)
	}
	for _, c := range []struct {
		tg   tag.Tag
		want string
	}{
		{tag.TransferSyntaxUID, ExplicitVRLittleEndian},
		{tag.ImplementationClassUID, ImplementationClassUID},
		{tag.MediaStorageSOPClassUID, o.SOPClassUID},
		{tag.MediaStorageSOPInstanceUID, o.SOPInstanceUID},
		{tag.SOPClassUID, o.SOPClassUID},
		{tag.SOPInstanceUID, o.SOPInstanceUID},
		{tag.StudyInstanceUID, o.StudyUID},
		{tag.SeriesInstanceUID, o.SeriesUID},
		{tag.Modality, o.Modality},
		{tag.PatientID, o.PatientID},
		{tag.SeriesNumber, strconv.Itoa(o.SeriesNumber)},
		{tag.InstanceNumber, strconv.Itoa(o.InstanceNumber)},
	} {
		if got := str(t, el, c.tg); got != c.want {
			t.Errorf("%s: %s = %q, want %q", o.Name, c.tg, got, c.want)
		}
	}
	for _, tg := range []tag.Tag{
		tag.PatientName, tag.IssuerOfPatientID, tag.PatientBirthDate, tag.PatientSex,
		tag.StudyDate, tag.StudyTime, tag.AccessionNumber, tag.StudyDescription,
		tag.ReferringPhysicianName, tag.StudyID, tag.SeriesDescription, tag.Manufacturer,
	} {
		mustFind(t, el, tg)
	}
	for _, uid := range []string{o.StudyUID, o.SeriesUID, o.SOPInstanceUID} {
		if len(uid) > 64 || !uidPattern.MatchString(uid) {
			t.Errorf("%s: invalid UID %q", o.Name, uid)
		}
	}
}

// frameData returns the parsed PixelData of ds.
func frameData(t *testing.T, ds dicom.Dataset) dicom.PixelDataInfo {
	t.Helper()
	return dicom.MustGetPixelDataInfo(mustFind(t, ds.Elements, tag.PixelData).Value)
}

func TestCTSeries(t *testing.T) {
	objs, err := CTSeries(Options{Seed: 7}, 5, 32, 48)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 5 {
		t.Fatalf("got %d objects", len(objs))
	}
	prevZ := -1e9
	seen := map[string]bool{}
	for i, o := range objs {
		if o.Name != "ct/ct-00"+strconv.Itoa(i+1)+".dcm" || o.Modality != "CT" || o.SOPClassUID != CTImageStorage || o.NumberOfFrames != 1 {
			t.Errorf("descriptor %d: %+v", i, o)
		}
		if seen[o.SOPInstanceUID] {
			t.Errorf("duplicate SOPInstanceUID %s", o.SOPInstanceUID)
		}
		seen[o.SOPInstanceUID] = true
		ds := parse(t, o.Data)
		checkCommon(t, o, ds)
		el := ds.Elements
		if find(el, tag.SpecificCharacterSet) != nil {
			t.Errorf("ASCII data set has SpecificCharacterSet")
		}
		if num(t, el, tag.Rows) != 32 || num(t, el, tag.Columns) != 48 || num(t, el, tag.BitsAllocated) != 16 ||
			num(t, el, tag.PixelRepresentation) != 1 || num(t, el, tag.HighBit) != num(t, el, tag.BitsStored)-1 {
			t.Errorf("bad image pixel module")
		}
		if str(t, el, tag.RescaleIntercept) != "-1024" || str(t, el, tag.RescaleSlope) != "1" ||
			str(t, el, tag.WindowCenter) != "40" || str(t, el, tag.WindowWidth) != "400" {
			t.Errorf("bad rescale/window")
		}
		z, _ := strconv.ParseFloat(str(t, el, tag.SliceLocation), 64)
		ipp := dicom.MustGetStrings(mustFind(t, el, tag.ImagePositionPatient).Value)
		ippZ, _ := strconv.ParseFloat(ipp[2], 64)
		if z <= prevZ || ippZ != z {
			t.Errorf("slice %d: SliceLocation %v (prev %v), IPP z %v", i, z, prevZ, ippZ)
		}
		prevZ = z
		pd := frameData(t, ds)
		if len(pd.Frames) != 1 {
			t.Fatalf("%d frames", len(pd.Frames))
		}
		raw := pd.Frames[0].NativeData.RawDataSlice().([]uint16)
		if len(raw) != 32*48 {
			t.Fatalf("%d pixels", len(raw))
		}
		distinct := map[int16]bool{}
		hasPadding := false
		for _, v := range raw {
			distinct[int16(v)] = true
			hasPadding = hasPadding || int16(v) == ctPadding
		}
		if len(distinct) < 10 || !hasPadding {
			t.Errorf("pixels: %d distinct values, padding present %v", len(distinct), hasPadding)
		}
	}
}

func TestMRSeries(t *testing.T) {
	t1, err := MRSeries(Options{Seed: 3}, 4, 40, 40)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := MRSeries(Options{Seed: 3, Contrast: "T2", SeriesNumber: 9}, 4, 40, 40)
	if err != nil {
		t.Fatal(err)
	}
	if t1[0].SeriesUID == t2[0].SeriesUID || t1[0].StudyUID != t2[0].StudyUID {
		t.Errorf("series UIDs must differ and study UIDs match")
	}
	for _, o := range append(t1, t2...) {
		ds := parse(t, o.Data)
		checkCommon(t, o, ds)
		el := ds.Elements
		if o.SOPClassUID != MRImageStorage || o.Modality != "MR" {
			t.Errorf("descriptor %+v", o)
		}
		if num(t, el, tag.BitsAllocated) != 16 || num(t, el, tag.BitsStored) != 12 || num(t, el, tag.HighBit) != 11 ||
			num(t, el, tag.PixelRepresentation) != 1 || num(t, el, tag.Rows) != 40 {
			t.Errorf("bad image pixel module")
		}
		mustFind(t, el, tag.RescaleIntercept)
		mustFind(t, el, tag.WindowWidth)
		raw := frameData(t, ds).Frames[0].NativeData.RawDataSlice().([]uint16)
		lo, hi := int16(32767), int16(-32768)
		for _, v := range raw {
			lo, hi = min(lo, int16(v)), max(hi, int16(v))
		}
		if lo < 0 || hi > 2047 || hi-lo < 100 {
			t.Errorf("pixel range %d..%d", lo, hi)
		}
	}
}

func TestXACine(t *testing.T) {
	o, err := XACine(Options{Seed: 5}, 6, 40, 50)
	if err != nil {
		t.Fatal(err)
	}
	ds := parse(t, o.Data)
	checkCommon(t, o, ds)
	el := ds.Elements
	if o.SOPClassUID != XAImageStorage || o.Modality != "XA" || o.NumberOfFrames != 6 || o.Name != "xa/xa-cine.dcm" {
		t.Errorf("descriptor %+v", o)
	}
	if str(t, el, tag.NumberOfFrames) != "6" || str(t, el, tag.FrameTime) != "66.67" ||
		str(t, el, tag.CineRate) != "15" || str(t, el, tag.RecommendedDisplayFrameRate) != "15" ||
		str(t, el, tag.PhotometricInterpretation) != "MONOCHROME2" || num(t, el, tag.BitsAllocated) != 8 {
		t.Errorf("bad multi-frame attributes")
	}
	if fip := dicom.MustGetInts(mustFind(t, el, tag.FrameIncrementPointer).Value); len(fip) != 2 || fip[0] != 0x0018 || fip[1] != 0x1063 {
		t.Errorf("FrameIncrementPointer = %x", fip)
	}
	pd := frameData(t, ds)
	if len(pd.Frames) != 6 {
		t.Fatalf("%d frames", len(pd.Frames))
	}
	for i, f := range pd.Frames {
		nf := f.NativeData
		if nf.Rows() != 40 || nf.Cols() != 50 || nf.BitsPerSample() != 8 {
			t.Fatalf("frame %d: %dx%d/%d", i, nf.Rows(), nf.Cols(), nf.BitsPerSample())
		}
		if i > 0 && nf.Equals(pd.Frames[i-1].NativeData) {
			t.Errorf("frame %d equals frame %d: the blob does not move", i, i-1)
		}
	}
}

func TestUSCine(t *testing.T) {
	o, err := USCine(Options{Seed: 5}, 4, 30, 40)
	if err != nil {
		t.Fatal(err)
	}
	ds := parse(t, o.Data)
	checkCommon(t, o, ds)
	el := ds.Elements
	if o.SOPClassUID != USMultiFrameImageStorage || o.Modality != "US" || o.NumberOfFrames != 4 {
		t.Errorf("descriptor %+v", o)
	}
	if num(t, el, tag.SamplesPerPixel) != 3 || num(t, el, tag.PlanarConfiguration) != 0 ||
		str(t, el, tag.PhotometricInterpretation) != "RGB" || num(t, el, tag.BitsAllocated) != 8 ||
		str(t, el, tag.NumberOfFrames) != "4" || str(t, el, tag.FrameTime) != "33.33" || str(t, el, tag.CineRate) != "30" {
		t.Errorf("bad US attributes")
	}
	pd := frameData(t, ds)
	if len(pd.Frames) != 4 {
		t.Fatalf("%d frames", len(pd.Frames))
	}
	colour := false
	for _, f := range pd.Frames {
		raw := f.NativeData.RawDataSlice().([]uint8)
		if len(raw) != 30*40*3 {
			t.Fatalf("%d samples", len(raw))
		}
		for i := 0; i < len(raw); i += 3 {
			colour = colour || raw[i] != raw[i+1] || raw[i] != raw[i+2]
		}
	}
	if !colour {
		t.Errorf("no colour pixel in the RGB cine")
	}
}

func TestECG12Lead(t *testing.T) {
	o, err := ECG12Lead(Options{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	ds := parse(t, o.Data)
	checkCommon(t, o, ds)
	if o.SOPClassUID != TwelveLeadECGWaveformStorage || o.Modality != "ECG" || o.NumberOfFrames != 0 {
		t.Errorf("descriptor %+v", o)
	}
	groups := items(t, ds.Elements, tag.WaveformSequence)
	if len(groups) != 1 {
		t.Fatalf("%d multiplex groups", len(groups))
	}
	g := groups[0]
	if num(t, g, tag.NumberOfWaveformChannels) != 12 || num(t, g, tag.NumberOfWaveformSamples) != ECGSamples ||
		str(t, g, tag.SamplingFrequency) != "500" || num(t, g, tag.WaveformBitsAllocated) != 16 ||
		str(t, g, tag.WaveformSampleInterpretation) != "SS" {
		t.Errorf("bad multiplex group attributes")
	}
	chans := items(t, g, tag.ChannelDefinitionSequence)
	if len(chans) != 12 {
		t.Fatalf("%d channels", len(chans))
	}
	labels := ECGLeadLabels()
	for i, c := range chans {
		if str(t, c, tag.ChannelLabel) != labels[i] {
			t.Errorf("channel %d label %q", i, str(t, c, tag.ChannelLabel))
		}
		src := items(t, c, tag.ChannelSourceSequence)
		if len(src) != 1 || str(t, src[0], tag.CodingSchemeDesignator) != "MDC" || str(t, src[0], tag.CodeValue) != ecgLeads[i].code {
			t.Errorf("channel %d source", i)
		}
		units := items(t, c, tag.ChannelSensitivityUnitsSequence)
		if len(units) != 1 || str(t, units[0], tag.CodeValue) != "uV" {
			t.Errorf("channel %d units", i)
		}
		if str(t, c, tag.ChannelSensitivity) != "1" || str(t, c, tag.ChannelSensitivityCorrectionFactor) != "1" ||
			str(t, c, tag.ChannelBaseline) != "0" || num(t, c, tag.WaveformBitsStored) != 16 {
			t.Errorf("channel %d calibration", i)
		}
	}
	wd := mustFind(t, g, tag.WaveformData)
	if wd.RawValueRepresentation != "OW" {
		t.Errorf("WaveformData VR %s", wd.RawValueRepresentation)
	}
	data := dicom.MustGetBytes(wd.Value)
	if len(data) != 12*ECGSamples*2 {
		t.Fatalf("WaveformData is %d bytes", len(data))
	}
	// Count R peaks in lead II (channel 1): 72 bpm over 10 s is 12 beats.
	peaks, armed := 0, true
	for s := range ECGSamples {
		v := int16(binary.LittleEndian.Uint16(data[(s*12+1)*2:]))
		if v > 600 && armed {
			peaks++
			armed = false
		}
		if v < 300 {
			armed = true
		}
	}
	if peaks < 11 || peaks > 13 {
		t.Errorf("%d R peaks in lead II, want about 12", peaks)
	}
}

func TestBasicTextSR(t *testing.T) {
	o, err := BasicTextSR(Options{Seed: 2, Findings: "Findings text.", Impression: "Impression text."})
	if err != nil {
		t.Fatal(err)
	}
	ds := parse(t, o.Data)
	checkCommon(t, o, ds)
	el := ds.Elements
	if o.SOPClassUID != BasicTextSRStorage || o.Modality != "SR" || o.NumberOfFrames != 0 {
		t.Errorf("descriptor %+v", o)
	}
	if str(t, el, tag.ValueType) != "CONTAINER" || str(t, el, tag.ContinuityOfContent) != "SEPARATE" ||
		str(t, el, tag.CompletionFlag) != "COMPLETE" || str(t, el, tag.VerificationFlag) != "UNVERIFIED" {
		t.Errorf("bad SR document attributes")
	}
	if cn := items(t, el, tag.ConceptNameCodeSequence); len(cn) != 1 || str(t, cn[0], tag.CodeValue) != "18748-4" {
		t.Errorf("bad root concept name")
	}
	content := items(t, el, tag.ContentSequence)
	if len(content) != 2 {
		t.Fatalf("%d content items", len(content))
	}
	for i, want := range []string{"Findings text.", "Impression text."} {
		c := content[i]
		if str(t, c, tag.RelationshipType) != "CONTAINS" || str(t, c, tag.ValueType) != "TEXT" || str(t, c, tag.TextValue) != want {
			t.Errorf("content item %d", i)
		}
		items(t, c, tag.ConceptNameCodeSequence)
	}
}

func TestDeterminism(t *testing.T) {
	gens := map[string]func(seed uint64) ([]Object, error){
		"CT": func(s uint64) ([]Object, error) { return CTSeries(Options{Seed: s}, 3, 16, 16) },
		"MR": func(s uint64) ([]Object, error) { return MRSeries(Options{Seed: s}, 3, 16, 16) },
		"XA": func(s uint64) ([]Object, error) { return one(XACine(Options{Seed: s}, 3, 16, 16)) },
		"US": func(s uint64) ([]Object, error) { return one(USCine(Options{Seed: s}, 3, 16, 16)) },
		"ECG": func(s uint64) ([]Object, error) {
			return one(ECG12Lead(Options{Seed: s}))
		},
		"SR": func(s uint64) ([]Object, error) { return one(BasicTextSR(Options{Seed: s})) },
		"large": func(s uint64) ([]Object, error) {
			var buf bytes.Buffer
			_, err := LargeMultiframe(&buf, Options{Seed: s}, 3, 16, 16)
			return []Object{{Data: buf.Bytes()}}, err
		},
		"corpus": Corpus,
	}
	for name, g := range gens {
		a, err := g(1)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := g(1)
		c, _ := g(2)
		if len(a) != len(b) || len(a) != len(c) {
			t.Fatalf("%s: lengths differ", name)
		}
		for i := range a {
			if !bytes.Equal(a[i].Data, b[i].Data) {
				t.Errorf("%s[%d]: same seed, different bytes", name, i)
			}
			if bytes.Equal(a[i].Data, c[i].Data) {
				t.Errorf("%s[%d]: different seeds, same bytes", name, i)
			}
		}
	}
}

func one(o Object, err error) ([]Object, error) { return []Object{o}, err }

func TestCorpus(t *testing.T) {
	objs, err := Corpus(1)
	if err != nil {
		t.Fatal(err)
	}
	patients := map[string]bool{}
	studyPatient := map[string]string{}
	seriesStudy := map[string]string{}
	seriesCount := map[string]int{}
	seriesNumbers := map[int]string{}
	seriesModality := map[string]string{}
	names := map[string]bool{}
	sops := map[string]bool{}
	total := 0
	for _, o := range objs {
		total += len(o.Data)
		ds := parse(t, o.Data)
		checkCommon(t, o, ds)
		patients[o.PatientID] = true
		if p, ok := studyPatient[o.StudyUID]; ok && p != o.PatientID {
			t.Errorf("study %s has two patients", o.StudyUID)
		}
		studyPatient[o.StudyUID] = o.PatientID
		if s, ok := seriesStudy[o.SeriesUID]; ok && s != o.StudyUID {
			t.Errorf("series %s in two studies", o.SeriesUID)
		}
		seriesStudy[o.SeriesUID] = o.StudyUID
		seriesCount[o.SeriesUID]++
		if s, ok := seriesNumbers[o.SeriesNumber]; ok && s != o.SeriesUID {
			t.Errorf("SeriesNumber %d used by two series", o.SeriesNumber)
		}
		seriesNumbers[o.SeriesNumber] = o.SeriesUID
		if m, ok := seriesModality[o.SeriesUID]; ok && m != o.Modality {
			t.Errorf("series %s has two modalities", o.SeriesUID)
		}
		seriesModality[o.SeriesUID] = o.Modality
		if names[o.Name] || sops[o.SOPInstanceUID] {
			t.Errorf("duplicate name or SOP Instance UID: %s", o.Name)
		}
		names[o.Name], sops[o.SOPInstanceUID] = true, true

		name := str(t, ds.Elements, tag.PatientName)
		cs := find(ds.Elements, tag.SpecificCharacterSet)
		switch o.PatientID {
		case PatientUTF8.ID:
			if name != "Müller^Jürgen" || cs == nil || dicom.MustGetStrings(cs.Value)[0] != "ISO_IR 192" {
				t.Errorf("%s: PatientName %q, SpecificCharacterSet %v", o.Name, name, cs)
			}
		case PatientASCII.ID:
			if name != PatientASCII.Name || cs != nil {
				t.Errorf("%s: PatientName %q, SpecificCharacterSet %v", o.Name, name, cs)
			}
		default:
			t.Errorf("unexpected patient %q", o.PatientID)
		}
	}
	if len(patients) != 2 || len(studyPatient) != 4 || len(seriesStudy) != 7 || len(objs) != 39 {
		t.Errorf("got %d patients, %d studies, %d series, %d instances; want 2, 4, 7, 39",
			len(patients), len(studyPatient), len(seriesStudy), len(objs))
	}
	want := map[int]struct {
		modality string
		count    int
	}{1: {"CT", 20}, 2: {"SR", 1}, 3: {"MR", 10}, 4: {"MR", 5}, 5: {"XA", 1}, 6: {"ECG", 1}, 7: {"US", 1}}
	for n, w := range want {
		uid, ok := seriesNumbers[n]
		if !ok || seriesModality[uid] != w.modality || seriesCount[uid] != w.count {
			t.Errorf("series %d: modality %q, %d instances; want %s, %d", n, seriesModality[uid], seriesCount[uid], w.modality, w.count)
		}
	}
	if total > 5<<20 {
		t.Errorf("corpus is %d bytes, want < 5 MB", total)
	}
}

func TestWriteCorpus(t *testing.T) {
	objs, err := Corpus(1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteCorpus(dir, objs); err != nil {
		t.Fatal(err)
	}
	dcmdump, _ := exec.LookPath("dcmdump")
	for _, o := range objs {
		path := filepath.Join(dir, filepath.FromSlash(o.Name))
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, o.Data) {
			t.Fatalf("%s: read back: %v", o.Name, err)
		}
		if _, err := dicom.ParseFile(path, nil); err != nil {
			t.Errorf("%s: ParseFile: %v", o.Name, err)
		}
		if dcmdump != "" {
			if out, err := exec.Command(dcmdump, "-q", path).CombinedOutput(); err != nil {
				t.Errorf("dcmdump %s: %v\n%s", o.Name, err, out)
			}
		}
	}
	if dcmdump == "" {
		t.Log("dcmdump not on PATH; DCMTK check skipped")
	}
	if err := WriteCorpus(dir, []Object{{Name: "../escape.dcm"}}); err == nil {
		t.Errorf("WriteCorpus accepted a name outside dir")
	}
}

func TestLargeMultiframe(t *testing.T) {
	const frames, rows, cols = 50, 256, 256
	var buf bytes.Buffer
	n, err := LargeMultiframe(&buf, Options{Seed: 4}, frames, rows, cols)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("returned %d, wrote %d", n, buf.Len())
	}
	ds := parse(t, buf.Bytes(), dicom.SkipProcessingPixelDataValue())
	el := ds.Elements
	if str(t, el, tag.NumberOfFrames) != "50" || num(t, el, tag.Rows) != rows || num(t, el, tag.Columns) != cols ||
		str(t, el, tag.SOPClassUID) != XAImageStorage || str(t, el, tag.MediaStorageSOPInstanceUID) != str(t, el, tag.SOPInstanceUID) {
		t.Errorf("bad header")
	}
	pd := mustFind(t, el, tag.PixelData)
	if got := len(dicom.MustGetPixelDataInfo(pd.Value).UnprocessedValueData); got != frames*rows*cols {
		t.Errorf("PixelData is %d bytes, want %d", got, frames*rows*cols)
	}
	if pd.RawValueRepresentation != "OB" {
		t.Errorf("PixelData VR %s", pd.RawValueRepresentation)
	}

	// Small: full parse, frames equal XACine's, odd length padded.
	buf.Reset()
	if _, err := LargeMultiframe(&buf, Options{Seed: 4}, 3, 5, 7); err != nil {
		t.Fatal(err)
	}
	small := parse(t, buf.Bytes())
	xa, err := XACine(Options{Seed: 4}, 3, 5, 7)
	if err != nil {
		t.Fatal(err)
	}
	xaPD := frameData(t, parse(t, xa.Data))
	for i, f := range frameData(t, small).Frames {
		if !f.NativeData.Equals(xaPD.Frames[i].NativeData) {
			t.Errorf("frame %d differs from XACine", i)
		}
	}

	if _, err := LargeMultiframe(io.Discard, Options{}, 1<<16, 256, 256); err == nil {
		t.Errorf("a 4 GiB PixelData was accepted")
	}
}

// TestLargeMultiframeStreams checks that memory use does not grow with the
// output: 64 MiB of output must allocate far less than that.
func TestLargeMultiframeStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := LargeMultiframe(io.Discard, Options{}, 256, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if n < 256*512*512 || alloc > 8<<20 {
		t.Errorf("wrote %d bytes, allocated %d bytes", n, alloc)
	}
}

func TestModuleSamplesDir(t *testing.T) {
	dir, err := ModuleSamplesDir()
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		if _, err := os.Stat(filepath.Join(dir, strconv.Itoa(i)+".dcm")); err != nil {
			t.Error(err)
		}
	}
	t.Setenv("GOMODCACHE", t.TempDir())
	if _, err := ModuleSamplesDir(); err == nil {
		t.Errorf("no error for an empty module cache")
	}
}

func TestOptionErrors(t *testing.T) {
	if _, err := CTSeries(Options{}, 0, 8, 8); err == nil {
		t.Error("CTSeries accepted n = 0")
	}
	if _, err := XACine(Options{}, 2, 0, 8); err == nil {
		t.Error("XACine accepted rows = 0")
	}
	if _, err := USCine(Options{}, 2, 8, 70000); err == nil {
		t.Error("USCine accepted cols = 70000")
	}
}

// TestRawPixelPath checks that large 16-bit images, whose pixel data is
// handed to the library pre-encoded, are byte-identical to the
// frame.NativeFrame encoding.
func TestRawPixelPath(t *testing.T) {
	fast, err := CTSeries(Options{Seed: 9}, 1, 256, 256)
	if err != nil {
		t.Fatal(err)
	}
	old := rawPixelThreshold
	rawPixelThreshold = math.MaxInt
	defer func() { rawPixelThreshold = old }()
	slow, err := CTSeries(Options{Seed: 9}, 1, 256, 256)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fast[0].Data, slow[0].Data) {
		t.Error("pre-encoded and NativeFrame pixel data differ")
	}
	ds := parse(t, fast[0].Data)
	if n := len(frameData(t, ds).Frames); n != 1 {
		t.Errorf("%d frames", n)
	}
}
