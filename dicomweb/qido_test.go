package dicomweb_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
)

// fixtureEnv stores the index matching fixture through STOW-RS.
func fixtureEnv(t *testing.T, be string) *env {
	t.Helper()
	e := newEnv(t, be, nil)
	var files [][]byte
	for _, in := range indextest.Fixture() {
		b, err := indextest.File(in)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if code, resp := e.stow(t, "/studies", files...); code != http.StatusOK {
		t.Fatalf("STOW fixture: %d %v", code, resp)
	}
	return e
}

var levelPaths = map[index.Level]string{index.StudyLevel: "/studies", index.SeriesLevel: "/series", index.ImageLevel: "/instances"}
var levelUID = map[index.Level]string{index.StudyLevel: "0020000D", index.SeriesLevel: "0020000E", index.ImageLevel: "00080018"}

// TestQIDOMatching runs the index's data-driven matching table (shared with the index
// and C-FIND tests) through QIDO-RS at study, series and instance level.
func TestQIDOMatching(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			e := fixtureEnv(t, be)
			for _, c := range indextest.MatchingCases {
				if c.Level == index.PatientLevel {
					continue // QIDO-RS has no patient resource
				}
				t.Run(c.Name, func(t *testing.T) {
					q := url.Values{}
					for k, v := range c.Filters {
						q.Set(k, v)
					}
					if c.Fuzzy {
						q.Set("fuzzymatching", "true")
					}
					got, _ := e.getJSON(t, e.base+levelPaths[c.Level]+"?"+q.Encode(), "Accept", "application/dicom+json")
					var uids []string
					for _, o := range got {
						uids = append(uids, value(o, levelUID[c.Level]))
					}
					if fmt.Sprint(uids) != fmt.Sprint(c.Want) {
						t.Fatalf("got %v, want %v", uids, c.Want)
					}
				})
			}
		})
	}
}

// TestQIDOResources checks the scoped resources, the return attributes, includefield
// and paging.
func TestQIDOResources(t *testing.T) {
	e := fixtureEnv(t, "sqlite")
	studies, _ := e.getJSON(t, e.base+"/studies?PatientID=PAT1&IssuerOfPatientID=HOSP")
	if len(studies) != 2 {
		t.Fatalf("%d studies", len(studies))
	}
	s := studies[1] // 1.2.1, CT Thorax
	for _, tag := range []string{"00080020", "00080030", "00080050", "00080056", "00080061", "00080090", "00081190", "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010", "00201206", "00201208"} {
		if _, ok := s[tag]; !ok {
			t.Errorf("study result lacks %s", tag)
		}
	}
	if pn, ok := s["00100010"].(map[string]any)["Value"].([]any)[0].(map[string]any); !ok || pn["Alphabetic"] != "Müller^Jürgen" {
		t.Errorf("PatientName = %v", s["00100010"])
	}
	if n, ok := s["00201208"].(map[string]any)["Value"].([]any)[0].(float64); !ok || n < 1 {
		t.Errorf("NumberOfStudyRelatedInstances = %v", s["00201208"])
	}
	if cs := value(s, "00080005"); cs != "ISO_IR 192" {
		t.Errorf("SpecificCharacterSet = %q", cs)
	}
	if u := value(s, "00081190"); u != e.base+"/studies/1.2.1" {
		t.Errorf("RetrieveURL = %q", u)
	}
	// Scoped series and instance queries.
	series, _ := e.getJSON(t, e.base+"/studies/1.2.1/series")
	if len(series) == 0 || value(series[0], "0020000D") != "1.2.1" || value(series[0], "00080060") == "" {
		t.Fatalf("series of 1.2.1: %v", series)
	}
	se := value(series[0], "0020000E")
	inst, _ := e.getJSON(t, e.base+"/studies/1.2.1/series/"+se+"/instances?includefield=00080008,all")
	if len(inst) == 0 || value(inst[0], "0020000E") != se {
		t.Fatalf("instances of %s: %v", se, inst)
	}
	if _, ok := inst[0]["00080016"]; !ok {
		t.Fatalf("instance result lacks SOPClassUID: %v", inst[0])
	}
	// includefield of an attribute only the stored metadata has, by keyword.
	inst, _ = e.getJSON(t, e.base+"/instances?SOPInstanceUID=1.4.11&includefield=ImplementationVersionName,SpecificCharacterSet")
	if len(inst) != 1 {
		t.Fatalf("instance 1.4.11: %v", inst)
	}
	// Paging: limit/offset pages concatenate to the full, stable list, and truncated
	// pages carry a Warning.
	all, _ := e.getJSON(t, e.base+"/instances")
	var paged []string
	for off := 0; ; off += 3 {
		page, resp := e.getJSON(t, e.base+"/instances?limit=3&offset="+fmt.Sprint(off))
		for _, o := range page {
			paged = append(paged, value(o, "00080018"))
		}
		truncated := strings.Contains(resp.Header.Get("Warning"), "truncated")
		if off+3 < len(all) != truncated {
			t.Fatalf("offset %d of %d: Warning %q", off, len(all), resp.Header.Get("Warning"))
		}
		if len(page) < 3 {
			break
		}
	}
	var full []string
	for _, o := range all {
		full = append(full, value(o, "00080018"))
	}
	if fmt.Sprint(paged) != fmt.Sprint(full) {
		t.Fatalf("pages %v\nfull  %v", paged, full)
	}
	// Unsupported matching keys are ignored with a Warning, not an error.
	_, resp := e.getJSON(t, e.base+"/studies?InstitutionName=X")
	if !strings.Contains(resp.Header.Get("Warning"), "InstitutionName") {
		t.Fatalf("Warning = %q", resp.Header.Get("Warning"))
	}
}
