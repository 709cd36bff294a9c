package tools

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// PydicomData is where Debian's python3-pydicom installs pydicom's test files.
const PydicomData = "/usr/lib/python3/dist-packages/pydicom/data"

// PydicomCharsetFiles returns pydicom's character set test files (charset_files/chr*.dcm),
// sorted, or reports them Missing.
func PydicomCharsetFiles(t testing.TB) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(PydicomData, "charset_files", "chr*.dcm"))
	if len(files) == 0 {
		Missing(t, "python3-pydicom's character set test files are not installed ("+PydicomData+"/charset_files)")
	}
	return files
}

// Python returns a Python 3 interpreter that imports pydicom: python3 on PATH, else
// Debian's /usr/bin/python3 (where python3-pydicom installs), or reports it Missing.
func Python(t testing.TB) string {
	t.Helper()
	return PythonWith(t, "pydicom", "Debian's python3-pydicom")
}

// PythonWith returns a Python 3 interpreter that imports module (installed by pkg, for
// the message): python3 on PATH, else Debian's /usr/bin/python3, where Debian's
// python3-* packages install; or reports it Missing.
func PythonWith(t testing.TB, module, pkg string) string {
	t.Helper()
	for _, name := range []string{"python3", "/usr/bin/python3"} {
		p, err := exec.LookPath(name)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import "+module).Run() == nil {
			return p
		}
	}
	Missing(t, "python3 with "+module+" ("+pkg+") not installed")
	return ""
}

// pydicomJSON prints, for each file named on the command line, pydicom's DICOM JSON
// of its data set (every value inline), as one JSON array.
const pydicomJSON = `
import json, sys, warnings
import pydicom
warnings.simplefilter("ignore")
out = []
for f in sys.argv[1:]:
    ds = pydicom.dcmread(f, force=True)
    out.append(ds.to_json_dict(bulk_data_threshold=1 << 30))
json.dump(out, sys.stdout, ensure_ascii=False)
`

// PydicomJSON returns what pydicom decodes from each file, as the DICOM JSON model of
// its data set (pydicom's Dataset.to_json_dict: strings in UTF-8, person names split
// into their component groups): the reference for character set decoding. Python and
// pydicom are required (see Python).
func PydicomJSON(t testing.TB, files ...string) []map[string]any {
	t.Helper()
	py := Python(t)
	cmd := exec.Command(py, append([]string{"-c", pydicomJSON}, files...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "PYTHONIOENCODING=utf-8")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("pydicom: %v\n%s", err, stderr.Bytes())
	}
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("pydicom's JSON: %v\n%.500s", err, b)
	}
	if len(out) != len(files) {
		t.Fatalf("pydicom answered %d objects for %d files", len(out), len(files))
	}
	return out
}
