package dicomweb_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/gen"
)

var (
	tagKey = regexp.MustCompile(`^[0-9A-F]{8}$`)
	vrs    = "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
)

// validateDICOMJSON checks a DICOM JSON object against PS3.18 Annex F.
func validateDICOMJSON(obj map[string]json.RawMessage, path string) error {
	for k, raw := range obj {
		if !tagKey.MatchString(k) {
			return fmt.Errorf("%s: key %q is not 8 upper-case hex digits", path, k)
		}
		var a map[string]json.RawMessage
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("%s%s: not an object", path, k)
		}
		var vr string
		if err := json.Unmarshal(a["vr"], &vr); err != nil || !strings.Contains(vrs, vr) || len(vr) != 2 {
			return fmt.Errorf("%s%s: vr %s", path, k, a["vr"])
		}
		n := 0
		for f := range a {
			switch f {
			case "vr":
			case "Value", "InlineBinary", "BulkDataURI":
				n++
			default:
				return fmt.Errorf("%s%s: unknown member %q", path, k, f)
			}
		}
		if n > 1 {
			return fmt.Errorf("%s%s: more than one of Value, InlineBinary, BulkDataURI", path, k)
		}
		if b, ok := a["InlineBinary"]; ok {
			var s string
			if json.Unmarshal(b, &s) != nil {
				return fmt.Errorf("%s%s: InlineBinary not a string", path, k)
			}
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				return fmt.Errorf("%s%s: InlineBinary not base64", path, k)
			}
		}
		v, ok := a["Value"]
		if !ok {
			continue
		}
		var vals []json.RawMessage
		if err := json.Unmarshal(v, &vals); err != nil || len(vals) == 0 {
			return fmt.Errorf("%s%s: Value is not a non-empty array", path, k)
		}
		for i, x := range vals {
			if string(x) == "null" {
				continue
			}
			switch vr {
			case "SQ":
				var item map[string]json.RawMessage
				if err := json.Unmarshal(x, &item); err != nil {
					return fmt.Errorf("%s%s[%d]: item not an object", path, k, i)
				}
				if err := validateDICOMJSON(item, fmt.Sprintf("%s%s[%d].", path, k, i)); err != nil {
					return err
				}
			case "PN":
				var pn map[string]string
				if err := json.Unmarshal(x, &pn); err != nil {
					return fmt.Errorf("%s%s: PN value %s is not an object of strings", path, k, x)
				}
				for g := range pn {
					if g != "Alphabetic" && g != "Ideographic" && g != "Phonetic" {
						return fmt.Errorf("%s%s: PN component group %q", path, k, g)
					}
				}
			case "IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV":
				var f float64
				if err := json.Unmarshal(x, &f); err != nil {
					return fmt.Errorf("%s%s: %s value %s is not a number", path, k, vr, x)
				}
			case "AT":
				var s string
				if json.Unmarshal(x, &s) != nil || !tagKey.MatchString(s) {
					return fmt.Errorf("%s%s: AT value %s", path, k, x)
				}
			default:
				var s string
				if err := json.Unmarshal(x, &s); err != nil {
					return fmt.Errorf("%s%s: %s value %s is not a string", path, k, vr, x)
				}
			}
		}
	}
	return nil
}

// TestMetadataJSON validates every instance's metadata against Annex F and compares
// one instance of each kind with golden files (LUMEN_UPDATE_GOLDEN=1 rewrites them).
func TestMetadataJSON(t *testing.T) {
	corpus, err := gen.Corpus(7)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sqlite", nil)
	var datas [][]byte
	for _, o := range corpus {
		datas = append(datas, o.Data)
	}
	if code, resp := e.stow(t, "/studies", datas...); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	golden := map[string]bool{}
	for _, o := range corpus {
		resp := e.do(t, http.MethodGet, instanceURL(e, o)+"/metadata", nil, "Accept", "application/dicom+json")
		raw := readAll(t, resp)
		var list []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil || len(list) != 1 {
			t.Fatalf("%s: metadata %v", o.Name, err)
		}
		if err := validateDICOMJSON(list[0], ""); err != nil {
			t.Fatalf("%s: %v", o.Name, err)
		}
		kind := strings.SplitN(filepath.Base(o.Name), "-", 2)[0]
		if golden[kind] {
			continue
		}
		golden[kind] = true
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, bytes.ReplaceAll(raw, []byte(e.base), []byte("{base}")), "", " "); err != nil {
			t.Fatal(err)
		}
		pretty.WriteByte('\n')
		file := filepath.Join("testdata", "golden", kind+".json")
		if os.Getenv("LUMEN_UPDATE_GOLDEN") == "1" {
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, pretty.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (run with LUMEN_UPDATE_GOLDEN=1 to create)", err)
		}
		if !bytes.Equal(want, pretty.Bytes()) {
			t.Fatalf("%s metadata differs from %s:\n%s", o.Name, file, pretty.String())
		}
	}
	if len(golden) < 5 {
		t.Fatalf("golden kinds %v", golden)
	}
}
