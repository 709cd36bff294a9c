package layertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/tools"
)

const modulePath = tools.ModulePath

// The floors, from the ground up. docs/architecture.md draws them.
const (
	ground = 0
	top    = 4
	// support is the place of testdata/...: test support, outside the floors (see never).
	support = -1
)

// floors puts every folder of the module on a floor; the most specific folder wins.
// Split folders have one room per subfolder (service/ingest and service/send are two
// rooms); any other folder is one room with its subfolders (dcm/codec is in the dcm room,
// dicomweb/admin in the dicomweb room). Imports inside one room are free, unless a never
// rule says otherwise.
var floors = []struct {
	folder string
	floor  int
	split  bool
}{
	{"dcm", ground, false},       // DICOM data model, DICOM JSON, charsets; dcm/codec: pixel decoders
	{"dimse", ground, false},     // PS3.8 upper layer, PS3.7 messages, SCU and SCP plumbing
	{"archive", ground, false},   // blob storage: Store, fs, s3, archivetest
	{"hl7", ground, false},       // HL7 v2: ER7 codec (hl7), MLLP transport (hl7/mllp)
	{"index", 1, false},          // metadata, matching, queue, audit table; sqlite, postgres
	{"render", 1, false},         // pixels to pictures
	{"service", 2, true},         // one package per PS3.4 service class or job
	{"httpkit", 2, true},         // HTTP plumbing the surfaces share
	{"dicomweb", 3, false},       // PS3.18 surface (+admin)
	{"emr", 3, false},            // EMR surfaces (+fhir, links)
	{"viewer", 3, false},         // the built-in viewer
	{"cmd", top, true},           // configuration, wiring, CLI
	{"testdata", support, false}, // object generators and tools for tests
}

// sideways lists the imports allowed between two rooms of one floor, each with its
// reason. Everything else on one floor between rooms fails, so that a new sideways arrow
// is a decision. The list must stay free of cycles (an order inside the floor).
var sideways = []struct{ from, to, why string }{
	{"service/send", "service/transcode", "a C-STORE SCU sends an object in a transfer syntax the peer accepted (transcode.Prepare, Choose)"},
	{"service/qr", "service/send", "C-MOVE and C-GET run their sub-operations through send.Sender"},
	{"service/qr", "service/transcode", "C-GET answers in a transfer syntax the requestor accepted"},
	{"service/metrics", "httpkit/httplimit", "the metrics export the HTTP limits' state (httplimit.Stats)"},
}

// A never rule forbids imports whatever the floors say.
type neverRule struct {
	rule     string // what it forbids, for the failure message
	from, to func(pkg string) bool
	why, fix string
}

var storageBackends = in("archive/fs", "archive/s3", "index/sqlite", "index/postgres", "index/sqlindex")

var never = []neverRule{
	{
		rule: "archive never imports dcm",
		from: in("archive"), to: in("dcm"),
		why: "archive holds bytes and knows nothing of DICOM (DESIGN.md §1)",
		fix: "keep DICOM handling in the caller (service/ingest, service/transcode)",
	},
	{
		rule: "dcm imports nothing of Lumen outside dcm (its test helpers may use testdata/...)",
		from: in("dcm"), to: not(in("dcm", "testdata")),
		why: "dcm is the ground everything stands on",
		fix: "move the code down into dcm, or up to the package that needs it",
	},
	{
		rule: "dimse imports nothing of Lumen outside dimse (its test helpers may use testdata/...)",
		from: in("dimse"), to: not(in("dimse", "testdata")),
		why: "dimse declares the handler interfaces it needs; cmd/lumen wires services into them",
		fix: "declare a small interface in dimse (like dimse.StoreHandler) and implement it in a service package",
	},
	{
		rule: "archive imports nothing of Lumen outside archive (its test helpers may use testdata/...)",
		from: in("archive"), to: not(in("archive", "testdata")),
		why: "archive is blob storage only",
		fix: "move the code that needs more up to a service package",
	},
	{
		rule: "hl7 imports nothing of Lumen outside hl7 (its test helpers may use testdata/...)",
		from: in("hl7"), to: not(in("hl7", "testdata")),
		why: "hl7 is the HL7 v2 codec and its transport: the standard library and golang.org/x/text only",
		fix: "keep patient and index logic in the service that handles the messages",
	},
	{
		rule: "nothing below the top imports cmd/...",
		from: not(in("cmd")), to: in("cmd"),
		why: "cmd/lumen is configuration, wiring and CLI; nothing is built on it",
		fix: "move what is shared out of cmd/ to the floor where it belongs",
	},
	{
		rule: "dicomweb, emr and viewer never import a storage backend",
		from: in("dicomweb", "emr", "viewer"), to: storageBackends,
		why: "a surface consumes small interfaces; cmd/lumen picks the backend",
		fix: "declare the interface the surface needs in the surface (as dicomweb.Index does) and let cmd/lumen pass the backend",
	},
	{
		rule: "viewer imports nothing of Lumen but httpkit",
		from: in("viewer"), to: not(in("viewer", "httpkit")),
		why: "the built-in viewer is a client of DICOMweb: it reads over HTTP, like OHIF",
		fix: "ask the server over DICOMweb from the page, or serve the data from dicomweb",
	},
	{
		rule: "only test helpers import test helpers (testdata/..., packages named ...test)",
		from: not(isSupport), to: isSupport,
		why: "test helpers do not ship in the binary",
		fix: "import the helper from a _test.go file, or move what the code needs out of the helper",
	},
	{
		rule: "testdata/... imports the ground floor and testdata only",
		from: in("testdata"), to: not(in("dcm", "dimse", "archive", "testdata")),
		why: "object generators stand on the data model, not on the archive they test",
		fix: "build what the generator needs from dcm, or move the code into a ...test package",
	},
}

// in reports whether a package is one of the folders or below one.
func in(folders ...string) func(string) bool {
	return func(pkg string) bool {
		for _, f := range folders {
			if pkg == f || strings.HasPrefix(pkg, f+"/") {
				return true
			}
		}
		return false
	}
}

func not(f func(string) bool) func(string) bool {
	return func(pkg string) bool { return !f(pkg) }
}

// isSupport reports whether a package is test support: testdata/... or a helper package
// named after Go's convention (httptest, iotest): archivetest, indextest, codectest.
func isSupport(pkg string) bool {
	return in("testdata")(pkg) || strings.HasSuffix(path.Base(pkg), "test")
}

// place returns a package's floor and room; ok is false when no folder holds it.
func place(pkg string) (floor int, room string, ok bool) {
	best := -1
	for i, f := range floors {
		if in(f.folder)(pkg) && (best < 0 || len(f.folder) > len(floors[best].folder)) {
			best = i
		}
	}
	if best < 0 {
		return 0, "", false
	}
	f := floors[best]
	room = f.folder
	if f.split && pkg != f.folder {
		rest, _, _ := strings.Cut(strings.TrimPrefix(pkg, f.folder+"/"), "/")
		room = f.folder + "/" + rest
	}
	return f.floor, room, true
}

func floorName(n int) string {
	switch n {
	case ground:
		return "the ground floor"
	case top:
		return "the top floor"
	case support:
		return "test support"
	}
	return "floor " + strconv.Itoa(n)
}

// pkg is one package of the module: its path and its imports of the module, both
// relative to the module ("index/sqlite"; "" is the module root).
type pkg struct {
	Path    string
	Imports []string
	// Dir and Files locate the import in a failure message (absolute paths).
	Dir   string
	Files []string
}

// check returns one message for every import that breaks a rule.
func check(pkgs []pkg) []string {
	var out []string
	reported := map[string]bool{} // packages on no floor, said once
	for _, p := range pkgs {
		ff, fromRoom, fok := place(p.Path)
		if !fok {
			if !reported[p.Path] {
				reported[p.Path] = true
				out = append(out, fmt.Sprintf("%s is on no floor: add its top folder to floors in cmd/lumen/internal/layertest/layers_test.go and to the table in docs/architecture.md", show(p.Path)))
			}
			continue
		}
		for _, imp := range p.Imports {
			tf, toRoom, tok := place(imp)
			if !tok {
				if !reported[imp] {
					reported[imp] = true
					out = append(out, fmt.Sprintf("%s is on no floor: add its top folder to floors in cmd/lumen/internal/layertest/layers_test.go and to the table in docs/architecture.md", show(imp)))
				}
				continue
			}
			edge := fmt.Sprintf("%s (%s, room %s) imports %s (%s, room %s)%s", show(p.Path), floorName(ff), fromRoom, show(imp), floorName(tf), toRoom, where(p, imp))
			var why []string
			for _, r := range never {
				if r.from(p.Path) && r.to(imp) {
					why = append(why, fmt.Sprintf("it breaks the never rule %q: %s. Fix: %s.", r.rule, r.why, r.fix))
				}
			}
			switch {
			case len(why) > 0:
				// A never rule is broken: no floor or allow-list can make the import right.
			case ff == support || tf == support:
				// Test support has no floor: the never rules above decide.
			case tf > ff:
				why = append(why, fmt.Sprintf("it runs up from %s to %s (an import goes down, or stays on its floor). Fix: declare the small interface %s needs in %s itself and let cmd/lumen pass a %s value, or move what it needs down to %s or lower.",
					floorName(ff), floorName(tf), show(p.Path), show(p.Path), show(imp), floorName(ff)))
			case tf == ff && fromRoom != toRoom && !allowedSideways(fromRoom, toRoom):
				why = append(why, fmt.Sprintf("it goes sideways on %s between rooms %s and %s, which the allow-list does not name. Fix: declare the small interface %s needs in %s and let cmd/lumen pass a %s value; or, if %s must build on %s, add {%q, %q, \"<reason>\"} to sideways in cmd/lumen/internal/layertest/layers_test.go and the line to docs/architecture.md.",
					floorName(ff), fromRoom, toRoom, fromRoom, fromRoom, toRoom, fromRoom, toRoom, fromRoom, toRoom))
			}
			if len(why) > 0 {
				out = append(out, edge+": "+strings.Join(why, " And "))
			}
		}
	}
	return out
}

func allowedSideways(from, to string) bool {
	return slices.ContainsFunc(sideways, func(s struct{ from, to, why string }) bool { return s.from == from && s.to == to })
}

func show(p string) string {
	if p == "" {
		return modulePath
	}
	return p
}

// where names the files of p that import imp, when they can be read.
func where(p pkg, imp string) string {
	var files []string
	for _, f := range p.Files {
		for _, i := range fileImports(f) {
			if i == modulePath+"/"+imp {
				files = append(files, path.Join(p.Path, filepath.Base(f)))
			}
		}
	}
	if len(files) == 0 {
		return ""
	}
	return " in " + strings.Join(files, ", ")
}

// fileImports returns the import paths of a Go file (nil if it does not parse).
func fileImports(file string) []string {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range f.Imports {
		if v, err := strconv.Unquote(s.Path.Value); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// testdataPackages lists the directories under testdata/ that hold Go code: `./...`
// skips directories named testdata, so they are named one by one (as the Makefile does).
func testdataPackages(t *testing.T, root string) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(filepath.Join(root, "testdata"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		dir := "./" + filepath.ToSlash(mustRel(t, root, filepath.Dir(p)))
		if !slices.Contains(dirs, dir) {
			dirs = append(dirs, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func mustRel(t *testing.T, base, target string) string {
	rel, err := filepath.Rel(base, target)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// goTool is the go command on PATH (go test puts the one running it first).
func goTool() string { return "go" }

// loadGraph reads the import graph of the module's non-test code with go list. The
// imports of files left out by build constraints (dcm/codec/openjpeg with or without
// cgo, httpkit/httplimit on other systems) are read from the files, so that no build tag
// hides an import.
func loadGraph(t *testing.T) []pkg {
	t.Helper()
	root := tools.RepoRoot(t)
	args := append([]string{"list", "-deps", "-json=ImportPath,Dir,Standard,Module,Imports,GoFiles,CgoFiles,IgnoredGoFiles,Error", "./..."}, testdataPackages(t, root)...)
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath, Dir                   string
			Standard                          bool
			Module                            *struct{ Path string }
			Imports                           []string
			GoFiles, CgoFiles, IgnoredGoFiles []string
			Error                             *struct{ Err string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Standard || p.Module == nil || p.Module.Path != modulePath {
			continue
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		q := pkg{Path: rel(p.ImportPath), Dir: p.Dir}
		for _, f := range slices.Concat(p.GoFiles, p.CgoFiles) {
			q.Files = append(q.Files, filepath.Join(p.Dir, f))
		}
		imports := slices.Clone(p.Imports)
		for _, f := range p.IgnoredGoFiles {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file := filepath.Join(p.Dir, f)
			q.Files = append(q.Files, file)
			imports = append(imports, fileImports(file)...)
		}
		for _, imp := range imports {
			if imp == modulePath || strings.HasPrefix(imp, modulePath+"/") {
				if r := rel(imp); !slices.Contains(q.Imports, r) {
					q.Imports = append(q.Imports, r)
				}
			}
		}
		pkgs = append(pkgs, q)
	}
	return pkgs
}

func rel(importPath string) string {
	return strings.TrimPrefix(strings.TrimPrefix(importPath, modulePath), "/")
}

// TestLayers checks the import graph of the module against the floors.
func TestLayers(t *testing.T) {
	pkgs := loadGraph(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.Path] = true
	}
	// A graph without these was not read right; an empty one would pass for nothing.
	for _, want := range []string{"dcm", "dimse", "archive", "index", "render", "service/ingest", "httpkit/auth", "dicomweb", "emr", "viewer", "cmd/lumen", "testdata/gen"} {
		if !seen[want] {
			t.Fatalf("go list did not report package %s; read %d packages", want, len(pkgs))
		}
	}
	for _, msg := range check(pkgs) {
		t.Error(msg)
	}
	t.Logf("%d packages of %s checked", len(pkgs), modulePath)
}

// TestCheckFails runs the checker on a made-up graph: each bad import must be reported,
// and each allowed one must not.
func TestCheckFails(t *testing.T) {
	bad := []struct{ from, to, says string }{
		{"index", "service/ingest", "runs up from floor 1 to floor 2"},
		{"index/sqlindex", "dicomweb", "runs up from floor 1 to floor 3"},
		{"dcm", "index", "dcm imports nothing of Lumen outside dcm"},
		{"dcm/codec", "render", "dcm imports nothing of Lumen outside dcm"},
		{"dicomweb", "archive/fs", "never import a storage backend"},
		{"emr/fhir", "index/sqlindex", "never import a storage backend"},
		{"render", "service/transcode", "runs up from floor 1 to floor 2"},
		{"render", "index", "goes sideways on floor 1 between rooms render and index"},
		{"archive/fs", "dcm", "archive never imports dcm"},
		{"archive", "dimse", "archive imports nothing of Lumen outside archive"},
		{"dimse", "index", "dimse imports nothing of Lumen outside dimse"},
		{"hl7/mllp", "dimse", `never rule "hl7 imports nothing of Lumen outside hl7`},
		{"service/ingest", "service/send", "goes sideways on floor 2 between rooms service/ingest and service/send"},
		{"service/transcode", "service/send", "goes sideways on floor 2"},
		{"service/commit", "service/ingest", "goes sideways on floor 2"},
		{"httpkit/auth", "service/audit", "goes sideways on floor 2"},
		{"emr", "dicomweb", "goes sideways on floor 3 between rooms emr and dicomweb"},
		{"viewer", "index", "viewer imports nothing of Lumen but httpkit"},
		{"service/qr", "cmd/lumen", "nothing below the top imports cmd/..."},
		{"dicomweb", "index/indextest", "only test helpers import test helpers"},
		{"service/ingest", "testdata/gen", "only test helpers import test helpers"},
		{"testdata/gen", "index", "testdata/... imports the ground floor and testdata only"},
		{"index", "widgets", "widgets is on no floor"},
		{"widgets", "dcm", "widgets is on no floor"},
	}
	for _, c := range bad {
		msgs := check([]pkg{{Path: c.from, Imports: []string{c.to}}})
		if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, c.says) }) {
			t.Errorf("%s → %s: want a report saying %q, got %q", c.from, c.to, c.says, msgs)
		}
	}
	good := [][2]string{
		{"dcm/codec", "dcm"}, {"dcm/codec/jls", "dcm/codec/internal/jpegmarker"},
		{"archive/fs", "archive"}, {"archive/s3/miniotest", "archive/s3"},
		{"index", "dcm"}, {"index/sqlite", "index/sqlindex"}, {"index/indextest", "index/sqlindex"},
		{"render", "dcm/codec"},
		{"service/send", "service/transcode"}, {"service/qr", "service/send"}, {"service/ingest", "dimse"},
		{"httpkit/auth", "index"},
		{"dicomweb/admin", "dicomweb"}, {"dicomweb", "service/ingest"}, {"dicomweb", "render"}, {"dicomweb", "archive"},
		{"emr", "emr/links"}, {"emr/fhir", "httpkit/publicurl"}, {"viewer", "httpkit/csp"},
		{"cmd/lumen", "index/postgres"}, {"cmd/lumen", "dicomweb/admin"},
		{"dcm/codec/codectest", "testdata/gen"}, {"testdata/cmd/peerbench", "dimse"}, {"testdata/cmd/gencorpus", "testdata/gen"},
	}
	for _, e := range good {
		if msgs := check([]pkg{{Path: e[0], Imports: []string{e[1]}}}); len(msgs) > 0 {
			t.Errorf("%s → %s is allowed, but: %q", e[0], e[1], msgs)
		}
	}
}

// TestSidewaysIsAnOrder checks the allow-list: each entry joins two rooms of one floor,
// and the entries make no cycle.
func TestSidewaysIsAnOrder(t *testing.T) {
	next := map[string][]string{}
	for _, s := range sideways {
		ff, fr, _ := place(s.from)
		tf, tr, _ := place(s.to)
		if ff != tf || fr != s.from || tr != s.to || s.from == s.to || s.why == "" {
			t.Errorf("sideways entry %s → %s must join two rooms of one floor, with a reason", s.from, s.to)
		}
		next[s.from] = append(next[s.from], s.to)
	}
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var visit func(r string, trail []string)
	visit = func(r string, trail []string) {
		switch state[r] {
		case open:
			t.Errorf("sideways imports make a cycle: %s", strings.Join(append(trail, r), " → "))
			return
		case done:
			return
		}
		state[r] = open
		for _, n := range next[r] {
			visit(n, append(trail, r))
		}
		state[r] = done
	}
	for _, s := range sideways {
		visit(s.from, nil)
	}
}
