package dicomweb_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
)

// metadataCounting wraps the service's real index and records, for each Find, whether it
// asked for the instances' stored metadata.
type metadataCounting struct {
	dicomweb.Index
	mu        sync.Mutex
	finds     int
	withMeta  int
	metaBytes int
}

func (m *metadataCounting) Find(ctx context.Context, q index.Query) (*index.Result, error) {
	r, err := m.Index.Find(ctx, q)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.finds++
	if q.WithMetadata {
		m.withMeta++
	}
	if r != nil {
		for _, in := range r.Instances {
			m.metaBytes += len(in.Metadata)
		}
	}
	return r, err
}

func (m *metadataCounting) reset() (finds, withMeta, metaBytes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	finds, withMeta, metaBytes = m.finds, m.withMeta, m.metaBytes
	m.finds, m.withMeta, m.metaBytes = 0, 0, 0
	return
}

const (
	bombStudy    = "1.2.826.0.1.3680043.10.1137.77"
	bombSeries   = bombStudy + ".1"
	bombInstance = bombStudy + ".1.1"
)

// bombFile is a small Secondary Capture object (8x8 pixels) with n private elements at
// the top level and nested more in a sequence item: about 20 bytes each in the file,
// 40 in its DICOM JSON.
func bombFile(t testing.TB, n, nested int) []byte {
	t.Helper()
	ds := &dcm.Dataset{}
	add := func(e *dcm.Element) { ds.Elements = append(ds.Elements, e) } // in tag order
	add(dcm.NewString(dcm.TagSOPClassUID, "UI", "1.2.840.10008.5.1.4.1.1.7"))
	add(dcm.NewString(dcm.TagSOPInstanceUID, "UI", bombInstance))
	add(dcm.NewString(dcm.TagModality, "CS", "OT"))
	item := &dcm.Dataset{}
	item.Elements = append(item.Elements, dcm.NewString(dcm.NewTag(0x0008, 0x1150), "UI", "1.2.840.10008.5.1.4.1.1.7"))
	for i := range nested {
		item.Elements = append(item.Elements, dcm.NewString(dcm.NewTag(0x0011, uint16(0x1000+i)), "LO", fmt.Sprintf("n%05d", i)))
	}
	add(dcm.NewSequence(dcm.NewTag(0x0008, 0x1140), item))
	add(dcm.NewString(dcm.NewTag(0x0009, 0x0010), "LO", "BOMB CREATOR"))
	for i := range n {
		add(dcm.NewString(dcm.NewTag(0x0009, uint16(0x1000+i)), "LO", fmt.Sprintf("v%05d", i)))
	}
	add(dcm.NewString(dcm.TagPatientID, "LO", "BOMB"))
	add(dcm.NewString(dcm.TagStudyInstanceUID, "UI", bombStudy))
	add(dcm.NewString(dcm.TagSeriesInstanceUID, "UI", bombSeries))
	add(dcm.NewUS(dcm.TagSamplesPerPixel, 1))
	add(dcm.NewString(dcm.TagPhotometricInterpretation, "CS", "MONOCHROME2"))
	add(dcm.NewUS(dcm.TagRows, 8))
	add(dcm.NewUS(dcm.TagColumns, 8))
	add(dcm.NewUS(dcm.TagBitsAllocated, 8))
	add(dcm.NewUS(dcm.TagBitsStored, 8))
	add(dcm.NewUS(dcm.TagHighBit, 7))
	add(dcm.NewUS(dcm.TagPixelRepresentation, 0))
	add(dcm.NewElement(dcm.TagPixelData, "OB", make([]byte, 64)))
	body, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	meta := dcm.EncodeMeta(dcm.Meta{MediaStorageSOPClassUID: "1.2.840.10008.5.1.4.1.1.7", MediaStorageSOPInstanceUID: bombInstance,
		TransferSyntaxUID: dcm.ExplicitVRLittleEndian, ImplementationClassUID: "1.2.3.4"})
	return append(meta, body...)
}

func countPrivate(t testing.TB, obj map[string]json.RawMessage) int {
	t.Helper()
	n := 0
	for k, raw := range obj {
		var g uint16
		fmt.Sscanf(k[:4], "%04X", &g)
		if g%2 == 1 {
			n++
		}
		var attr struct {
			VR    string                       `json:"vr"`
			Value []map[string]json.RawMessage `json:"Value"`
		}
		if json.Unmarshal(raw, &attr) == nil && attr.VR == "SQ" {
			for _, it := range attr.Value {
				n += countPrivate(t, it)
			}
		}
	}
	return n
}

// TestMetadataBomb stores an object with 30,000 private elements through STOW-RS: the
// stored DICOM JSON keeps at most the default number of private elements, WADO-RS
// metadata answers that bounded JSON, and WADO-RS still returns the stored object
// byte for byte.
func TestMetadataBomb(t *testing.T) {
	e := newEnv(t, "sqlite", nil)
	file := bombFile(t, 25000, 5000)
	if code, resp := e.stow(t, "/studies", file); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	in, err := e.idx.Instance(context.Background(), bombInstance)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(in.Metadata, &obj); err != nil {
		t.Fatalf("stored metadata is not JSON: %v", err)
	}
	if n := countPrivate(t, obj); n > 10000 {
		t.Fatalf("stored metadata holds %d private elements (%d bytes), want at most 10000", n, len(in.Metadata))
	}
	// What was left out is recorded with the instance.
	if want := "20001 private elements past the first 10000"; !strings.Contains(in.MetadataOmitted, want) {
		t.Errorf("MetadataOmitted %q, want it to say %q", in.MetadataOmitted, want)
	}
	for _, k := range []string{"00080018", "00100020", "0020000D", "00280010", "00280100", "7FE00010", "00081140"} {
		if _, ok := obj[k]; !ok {
			t.Errorf("public attribute %s missing from the stored metadata", k)
		}
	}
	// WADO-RS metadata is the stored JSON.
	list, _ := e.getJSON(t, e.base+"/studies/"+bombStudy+"/series/"+bombSeries+"/instances/"+bombInstance+"/metadata")
	if len(list) != 1 || value(list[0], "00080018") != bombInstance {
		t.Fatalf("metadata: %d objects", len(list))
	}
	// The object itself is stored unchanged.
	resp := e.do(t, http.MethodGet, e.base+"/studies/"+bombStudy+"/series/"+bombSeries+"/instances/"+bombInstance, nil, "Accept", `multipart/related; type="application/dicom"`)
	parts := readParts(t, resp, "application/dicom")
	if len(parts) != 1 || !bytes.Equal(parts[0].body, file) {
		t.Fatalf("WADO-RS returned %d parts, the object differs from the one stored", len(parts))
	}
}

// TestQIDOInstancesSkipMetadata checks that instance-level QIDO-RS reads the instances'
// stored metadata only when the answer needs an attribute the index does not hold
// (includefield=all, or a non-indexed attribute), and that the default attributes
// (BitsAllocated among them) are still answered.
func TestQIDOInstancesSkipMetadata(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			var idx *metadataCounting
			e := newEnv(t, be, func(s *dicomweb.Service) {
				idx = &metadataCounting{Index: s.Index}
				s.Index = idx
			})
			if code, resp := e.stow(t, "/studies", bombFile(t, 3000, 10)); code != http.StatusOK {
				t.Fatalf("STOW: %d %v", code, resp)
			}
			for _, c := range []struct {
				query    string
				withMeta bool
			}{
				{"/instances", false},
				{"/instances?PatientID=BOMB", false},
				{"/studies/" + bombStudy + "/instances", false},
				{"/studies/" + bombStudy + "/series/" + bombSeries + "/instances?includefield=PatientBirthDate,StudyDescription", false},
				{"/instances?SOPClassUID=1.2.840.10008.5.1.4.1.1.7&limit=5&offset=0", false},
				{"/instances?includefield=all", true},
				{"/instances?includefield=00280004", true}, // PhotometricInterpretation: not indexed
				{"/instances?00091000=v00000", true},       // matching on a private attribute: answered from metadata
			} {
				idx.reset()
				list, _ := e.getJSON(t, e.base+c.query, "Accept", "application/dicom+json")
				finds, withMeta, metaBytes := idx.reset()
				if len(list) != 1 || value(list[0], "00080018") != bombInstance || value(list[0], "00280100") != "8" || value(list[0], "00280010") != "8" {
					t.Fatalf("%s: %d results %v", c.query, len(list), list)
				}
				if c.withMeta != (withMeta > 0) || !c.withMeta && metaBytes > 0 {
					t.Fatalf("%s: %d index queries, %d with metadata (%d bytes read), want metadata %v", c.query, finds, withMeta, metaBytes, c.withMeta)
				}
				if c.query == "/instances?includefield=00280004" && value(list[0], "00280004") != "MONOCHROME2" {
					t.Fatalf("%s: %v", c.query, list[0])
				}
			}
		})
	}
}
