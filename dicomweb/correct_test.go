package dicomweb_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestCorrectionsOnRetrieve corrects one patient's name in the index (as an HL7 A08
// does) and reads that patient's objects back through every DICOMweb surface: QIDO,
// WADO-RS metadata, WADO-RS and WADO-URI instances show the corrected name, the
// objects keep their transfer syntax and every byte from the pixel data on; the
// objects of the other patients still go out byte-identical.
func TestCorrectionsOnRetrieve(t *testing.T) {
	corpus, err := gen.Corpus(11)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			e := newEnv(t, be, nil)
			var datas [][]byte
			for _, o := range corpus {
				datas = append(datas, o.Data)
			}
			if code, resp := e.stow(t, "/studies", datas...); code != http.StatusOK {
				t.Fatalf("STOW: %d %v", code, resp)
			}
			target := corpus[0]
			const corrected = "Corrected^Name^Q"
			name := corrected
			if _, err := e.idx.(index.Identity).UpdatePatient(context.Background(), index.PatientKey{ID: target.PatientID, Issuer: issuerOf(t, target)}, index.Demographics{Name: &name}, index.Change{Source: "test"}); err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, o := range corpus {
				if o.PatientID != target.PatientID {
					parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM+"; transfer-syntax=*"), "application/dicom")
					if len(parts) != 1 || !bytes.Equal(parts[0].body, o.Data) {
						t.Fatalf("%s of another patient is not byte-identical", o.Name)
					}
					continue
				}
				seen++
				parts := readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM+"; transfer-syntax=*"), "application/dicom")
				if len(parts) != 1 {
					t.Fatalf("%s: %d parts", o.Name, len(parts))
				}
				checkCorrected(t, o, parts[0].body, corrected)
				resp := e.do(t, http.MethodGet, e.srv.URL+"/wado?requestType=WADO&studyUID="+o.StudyUID+"&seriesUID="+o.SeriesUID+"&objectUID="+o.SOPInstanceUID+"&contentType=application/dicom&transferSyntax=*", nil)
				checkCorrected(t, o, readAll(t, resp), corrected)
				// Converted on the way out (Implicit VR Little Endian): corrected too.
				parts = readParts(t, e.do(t, http.MethodGet, instanceURL(e, o), nil, "Accept", acceptDICOM+"; transfer-syntax=1.2.840.10008.1.2"), "application/dicom")
				if f, err := dcm.Parse(bytes.NewReader(parts[0].body), nil); err != nil || f.Dataset.Text(dcm.TagPatientName) != corrected {
					t.Fatalf("%s converted: %v", o.Name, err)
				}
				meta, _ := e.getJSON(t, instanceURL(e, o)+"/metadata")
				if len(meta) != 1 || personName(meta[0], "00100010") != corrected {
					t.Fatalf("%s metadata: %v", o.Name, meta)
				}
			}
			if seen == 0 {
				t.Fatal("no object of the corrected patient")
			}
			studies, _ := e.getJSON(t, e.base+"/studies?PatientID="+target.PatientID)
			if len(studies) == 0 {
				t.Fatal("QIDO found no study")
			}
			for _, s := range studies {
				if personName(s, "00100010") != corrected {
					t.Fatalf("QIDO name %q", personName(s, "00100010"))
				}
			}
		})
	}
}

// issuerOf is the IssuerOfPatientID of a generated object.
func issuerOf(t *testing.T, o gen.Object) string {
	f, err := dcm.Parse(bytes.NewReader(o.Data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return f.Dataset.Text(dcm.TagIssuerOfPatientID)
}

// checkCorrected checks that got is o's stored object with the corrected name: the
// same transfer syntax, the same bytes from the pixel data on.
func checkCorrected(t *testing.T, o gen.Object, got []byte, name string) {
	t.Helper()
	f, err := dcm.Parse(bytes.NewReader(got), nil)
	if err != nil {
		t.Fatalf("%s: %v", o.Name, err)
	}
	orig, _ := dcm.Parse(bytes.NewReader(o.Data), nil)
	if f.TransferSyntax != orig.TransferSyntax || f.Dataset.Text(dcm.TagPatientName) != name || f.Dataset.Text(dcm.TagPatientID) != o.PatientID {
		t.Fatalf("%s: syntax %s name %q", o.Name, f.TransferSyntax, f.Dataset.Text(dcm.TagPatientName))
	}
	if pd, opd := f.Dataset.Get(dcm.TagPixelData), orig.Dataset.Get(dcm.TagPixelData); pd != nil && !bytes.Equal(got[pd.Offset:], o.Data[opd.Offset:]) {
		t.Fatalf("%s: bytes from the pixel data on changed", o.Name)
	}
}

// personName is the Alphabetic group of a PN attribute of a DICOM JSON object.
func personName(obj map[string]any, tag string) string {
	a, _ := obj[tag].(map[string]any)
	v, _ := a["Value"].([]any)
	if len(v) == 0 {
		return ""
	}
	p, _ := v[0].(map[string]any)
	s, _ := p["Alphabetic"].(string)
	return s
}

// openCounter counts the opens of each stored object (Get and GetRange).
type openCounter struct {
	dicomweb.Store
	mu    sync.Mutex
	opens map[string]int
}

func (c *openCounter) count(key string) {
	c.mu.Lock()
	c.opens[key]++
	c.mu.Unlock()
}

func (c *openCounter) Get(ctx context.Context, key string) (io.ReadCloser, archive.ObjectInfo, error) {
	c.count(key)
	return c.Store.Get(ctx, key)
}

func (c *openCounter) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	c.count(key)
	return c.Store.GetRange(ctx, key, off, n)
}

// TestCorrectedStudyRetrieve retrieves a study whose patient was corrected, as one
// multipart/related answer: every part has the corrected header and the stored bytes
// from the pixel data on, its Content-Length is its length, and the answer's
// Content-Length is the body's. Each object is prepared once: its header read once to
// be corrected and measured, and the object opened once to be sent.
func TestCorrectedStudyRetrieve(t *testing.T) {
	objs, err := gen.CTSeries(gen.Options{Seed: 53}, 6, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	var counter *openCounter
	e := newEnv(t, "sqlite", func(s *dicomweb.Service) {
		counter = &openCounter{Store: s.Store, opens: map[string]int{}}
		s.Store = counter
	})
	var datas [][]byte
	for _, o := range objs {
		datas = append(datas, o.Data)
	}
	if code, resp := e.stow(t, "/studies", datas...); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	const corrected = "Corrected^Study^Q"
	name := corrected
	if _, err := e.idx.(index.Identity).UpdatePatient(context.Background(), index.PatientKey{ID: objs[0].PatientID, Issuer: issuerOf(t, objs[0])}, index.Demographics{Name: &name}, index.Change{Source: "test"}); err != nil {
		t.Fatal(err)
	}
	counter.mu.Lock()
	clear(counter.opens)
	counter.mu.Unlock()
	resp := e.do(t, http.MethodGet, e.base+"/studies/"+objs[0].StudyUID, nil, "Accept", acceptDICOM+"; transfer-syntax=*")
	length := resp.ContentLength
	body := readAll(t, resp)
	if length < 0 || length != int64(len(body)) {
		t.Fatalf("Content-Length %d, body %d bytes", length, len(body))
	}
	resp = &http.Response{StatusCode: http.StatusOK, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body))}
	parts := readParts(t, resp, "application/dicom")
	if len(parts) != len(objs) {
		t.Fatalf("%d parts, want %d", len(parts), len(objs))
	}
	bySOP := map[string]gen.Object{}
	for _, o := range objs {
		bySOP[o.SOPInstanceUID] = o
	}
	for _, p := range parts {
		if p.header.Get("Content-Length") != fmt.Sprint(len(p.body)) {
			t.Fatalf("part Content-Length %s for %d bytes", p.header.Get("Content-Length"), len(p.body))
		}
		f, err := dcm.Parse(bytes.NewReader(p.body), nil)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := bySOP[f.Dataset.String(dcm.TagSOPInstanceUID)]
		if !ok {
			t.Fatalf("part of an unknown instance")
		}
		checkCorrected(t, o, p.body, corrected)
	}
	counter.mu.Lock()
	defer counter.mu.Unlock()
	if len(counter.opens) != len(objs) {
		t.Fatalf("%d objects opened, want %d", len(counter.opens), len(objs))
	}
	for key, n := range counter.opens {
		if n > 2 {
			t.Errorf("object %s opened %d times, want 2 (its header, then the object)", key, n)
		}
	}
}
