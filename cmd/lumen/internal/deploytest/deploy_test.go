package deploytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/tools"
	"go.yaml.in/yaml/v3"
)

func readRootFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tools.RepoRoot(t), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// LICENSE

func TestLicense(t *testing.T) {
	text := strings.ReplaceAll(string(readRootFile(t, "LICENSE")), "\r\n", "\n")
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(text), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	if len(lines) < 3 || lines[0] != "Apache License" || lines[1] != "Version 2.0, January 2004" ||
		lines[2] != "http://www.apache.org/licenses/" {
		t.Fatalf("LICENSE does not start with the Apache License 2.0 header: %q", lines[:min(3, len(lines))])
	}
	for _, want := range []string{
		"TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
		"1. Definitions.",
		"2. Grant of Copyright License.",
		"3. Grant of Patent License.",
		"4. Redistribution.",
		"5. Submission of Contributions.",
		"6. Trademarks.",
		"7. Disclaimer of Warranty.",
		"8. Limitation of Liability.",
		"9. Accepting Warranty or Additional Liability.",
		"END OF TERMS AND CONDITIONS",
		"APPENDIX: How to apply the Apache License to your work.",
		`Licensed under the Apache License, Version 2.0 (the "License");`,
	} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("LICENSE has no line starting %q", want)
		}
	}
}

// ---------------------------------------------------------------------------
// Dockerfile

type instruction struct {
	line int    // 1-based line of the instruction's first line
	cmd  string // upper case
	args string
}

type stage struct {
	from  instruction
	base  string
	name  string
	instr []instruction
}

// parseDockerfile splits a Dockerfile into instructions (joining continuation
// lines and dropping comments and parser directives) and groups them by stage.
// It does not expand ARGs or handle a non-default escape directive.
func parseDockerfile(src []byte) (global []instruction, stages []*stage, err error) {
	sc := bufio.NewScanner(bytes.NewReader(src))
	var cur *instruction
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur != nil) {
			continue // comments, and blank lines inside a continuation
		}
		if trimmed == "" {
			continue
		}
		cont := strings.HasSuffix(line, `\`)
		if cont {
			trimmed = strings.TrimSpace(strings.TrimSuffix(trimmed, `\`))
		}
		if cur == nil {
			kw, rest, _ := strings.Cut(trimmed, " ")
			cur = &instruction{line: n, cmd: strings.ToUpper(kw), args: strings.TrimSpace(rest)}
		} else {
			cur.args = strings.TrimSpace(cur.args + " " + trimmed)
		}
		if cont {
			continue
		}
		in := *cur
		cur = nil
		if in.cmd == "FROM" {
			st := &stage{from: in}
			var fields []string
			for _, f := range strings.Fields(in.args) {
				if !strings.HasPrefix(f, "--") {
					fields = append(fields, f)
				}
			}
			switch {
			case len(fields) == 1:
			case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
				st.name = fields[2]
			default:
				return nil, nil, fmt.Errorf("line %d: cannot parse FROM %s", in.line, in.args)
			}
			if len(fields) > 0 {
				st.base = fields[0]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				return nil, nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
			}
			global = append(global, in)
			continue
		}
		last := stages[len(stages)-1]
		last.instr = append(last.instr, in)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if cur != nil {
		return nil, nil, fmt.Errorf("line %d: continuation at end of file", cur.line)
	}
	return global, stages, nil
}

func (s *stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instr {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes a JSON (exec form) argument list.
func execForm(args string) ([]string, bool) {
	var v []string
	if err := json.Unmarshal([]byte(args), &v); err != nil || len(v) == 0 {
		return nil, false
	}
	return v, true
}

// stripFlags removes leading --flag[=value] words (as on RUN, COPY, HEALTHCHECK).
func stripFlags(args string) string {
	for strings.HasPrefix(args, "--") {
		_, rest, ok := strings.Cut(args, " ")
		if !ok {
			return ""
		}
		args = strings.TrimSpace(rest)
	}
	return args
}

func flagValue(args, name string) string {
	for _, f := range strings.Fields(args) {
		if !strings.HasPrefix(f, "--") {
			break
		}
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v
		}
	}
	return ""
}

func TestDockerfile(t *testing.T) {
	_, stages, err := parseDockerfile(readRootFile(t, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d FROM stages, want a multi-stage build (>= 2)", len(stages))
	}
	names := map[string]bool{}
	for _, s := range stages[:len(stages)-1] {
		if s.name != "" {
			names[s.name] = true
		}
	}
	final := stages[len(stages)-1]

	t.Run("build", func(t *testing.T) {
		var build *stage
		var buildRun instruction
		for _, s := range stages[:len(stages)-1] {
			for _, in := range s.all("RUN") {
				if strings.Contains(in.args, "go build") {
					build, buildRun = s, in
				}
			}
		}
		if build == nil {
			t.Fatal("no build stage runs `go build`")
		}
		cgoOff := strings.Contains(buildRun.args, "CGO_ENABLED=0")
		for _, in := range build.all("ENV") {
			if strings.Contains(strings.ReplaceAll(in.args, " ", "="), "CGO_ENABLED=0") {
				cgoOff = true
			}
		}
		// The final image is distroless/static: the binary must be static, either pure
		// Go or cgo linked with -static.
		staticCgo := strings.Contains(buildRun.args, "CGO_ENABLED=1") && strings.Contains(buildRun.args, `-extldflags "-static`) &&
			strings.Contains(buildRun.args, "netgo") && strings.Contains(buildRun.args, "osusergo")
		if !cgoOff && !staticCgo {
			t.Errorf("line %d: go build neither without cgo (CGO_ENABLED=0) nor linked statically (-extldflags \"-static\" with netgo, osusergo)", buildRun.line)
		}
		for _, want := range []string{"-trimpath", "./cmd/lumen"} {
			if !strings.Contains(buildRun.args, want) {
				t.Errorf("line %d: go build lacks %s", buildRun.line, want)
			}
		}
		// Module download layer: COPY go.mod go.sum, then go mod download, then
		// the rest of the source.
		copyMod, download, copyAll := -1, -1, -1
		for i, in := range build.instr {
			switch {
			case in.cmd == "COPY" && copyMod < 0 && strings.Contains(in.args, "go.mod") && strings.Contains(in.args, "go.sum"):
				copyMod = i
			case in.cmd == "RUN" && download < 0 && strings.Contains(in.args, "go mod download"):
				download = i
			case in.cmd == "COPY" && copyAll < 0 && strings.HasPrefix(stripFlags(in.args), ". "):
				copyAll = i
			}
		}
		if copyMod < 0 || download < 0 || copyAll < 0 || !(copyMod < download && download < copyAll) {
			t.Errorf("build stage should COPY go.mod go.sum, RUN go mod download, then COPY . (got positions %d, %d, %d)",
				copyMod, download, copyAll)
		}
	})

	t.Run("final", func(t *testing.T) {
		users := final.all("USER")
		if len(users) == 0 {
			t.Fatal("final stage sets no USER")
		}
		u := users[len(users)-1]
		user, _, _ := strings.Cut(u.args, ":")
		if user == "" || user == "root" || user == "0" {
			t.Errorf("line %d: final USER %q is root", u.line, u.args)
		}
		if _, err := strconv.Atoi(user); err != nil {
			t.Errorf("line %d: final USER %q is not numeric (runAsNonRoot cannot verify a name)", u.line, u.args)
		}

		eps := final.all("ENTRYPOINT")
		if len(eps) == 0 {
			t.Fatal("final stage has no ENTRYPOINT")
		}
		ep := eps[len(eps)-1]
		argv, ok := execForm(ep.args)
		if !ok {
			t.Fatalf("line %d: ENTRYPOINT %s is not in exec (JSON) form", ep.line, ep.args)
		}
		bin := argv[0]
		if path.Base(bin) != "lumen" || !path.IsAbs(bin) {
			t.Errorf("line %d: ENTRYPOINT runs %q, want an absolute path to the lumen binary", ep.line, bin)
		}
		copied := false
		for _, in := range final.all("COPY") {
			from := flagValue(in.args, "from")
			f := strings.Fields(stripFlags(in.args))
			if from != "" && len(f) >= 2 && f[len(f)-1] == bin {
				copied = true
				if !names[from] {
					t.Errorf("line %d: COPY --from=%s names no earlier stage", in.line, from)
				}
			}
		}
		if !copied {
			t.Errorf("final stage does not COPY --from a build stage to %s", bin)
		}

		hcs := final.all("HEALTHCHECK")
		if len(hcs) == 0 {
			t.Fatal("final stage has no HEALTHCHECK")
		}
		hc := hcs[len(hcs)-1]
		rest := stripFlags(hc.args)
		cmdArgs, ok := strings.CutPrefix(rest, "CMD ")
		if !ok {
			t.Fatalf("line %d: HEALTHCHECK %s is not a CMD", hc.line, hc.args)
		}
		hargv, ok := execForm(strings.TrimSpace(cmdArgs))
		if !ok {
			t.Fatalf("line %d: HEALTHCHECK CMD is not in exec form (the image has no shell)", hc.line)
		}
		if !slices.Equal(hargv, []string{bin, "healthcheck"}) {
			t.Errorf("line %d: HEALTHCHECK CMD %q, want [%s healthcheck]", hc.line, hargv, bin)
		}

		exposed := map[string]bool{}
		for _, in := range final.all("EXPOSE") {
			for _, p := range strings.Fields(in.args) {
				p, _, _ = strings.Cut(p, "/")
				exposed[p] = true
			}
		}
		for _, p := range []string{"8080", "11112"} {
			if !exposed[p] {
				t.Errorf("final stage does not EXPOSE %s", p)
			}
		}

		env := strings.Join(func() []string {
			var s []string
			for _, in := range final.all("ENV") {
				s = append(s, in.args)
			}
			return s
		}(), " ")
		if !strings.Contains(env, "LUMEN_DATA_DIR=/var/lib/lumen") {
			t.Errorf("final stage does not set ENV LUMEN_DATA_DIR=/var/lib/lumen")
		}
		labels := strings.Join(func() []string {
			var s []string
			for _, in := range final.all("LABEL") {
				s = append(s, in.args)
			}
			return s
		}(), " ")
		if !strings.Contains(labels, `org.opencontainers.image.licenses="Apache-2.0"`) {
			t.Errorf("final stage lacks the label org.opencontainers.image.licenses=\"Apache-2.0\"")
		}
	})
}

// ---------------------------------------------------------------------------
// .dockerignore

type ignorePattern struct {
	re      *regexp.Regexp
	dirs    int
	exclude bool // a "!" exception
}

// parseDockerignore compiles .dockerignore patterns the way Docker does
// (github.com/moby/patternmatcher): paths are cleaned and slash-separated,
// "**" matches any number of directories, and a pattern that matches a parent
// directory matches everything below it.
func parseDockerignore(src []byte) ([]ignorePattern, error) {
	var out []ignorePattern
	for l := range strings.SplitSeq(string(src), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p := ignorePattern{}
		if rest, ok := strings.CutPrefix(l, "!"); ok {
			p.exclude = true
			l = strings.TrimSpace(rest)
		}
		l = strings.TrimPrefix(path.Clean(l), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(l); i++ {
			switch c := l[i]; c {
			case '*':
				if i+1 < len(l) && l[i+1] == '*' {
					i++
					if i+1 < len(l) && l[i+1] == '/' {
						i++
					}
					if i+1 == len(l) {
						re.WriteString(".*")
					} else {
						re.WriteString("(.*/)?")
					}
				} else {
					re.WriteString("[^/]*")
				}
			case '?':
				re.WriteString("[^/]")
			case '\\':
				if i+1 < len(l) {
					i++
					re.WriteString(regexp.QuoteMeta(string(l[i])))
				}
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("$")
		var err error
		if p.re, err = regexp.Compile(re.String()); err != nil {
			return nil, fmt.Errorf("pattern %q: %w", l, err)
		}
		p.dirs = len(strings.Split(l, "/"))
		out = append(out, p)
	}
	return out, nil
}

func ignored(patterns []ignorePattern, file string) bool {
	parts := strings.Split(file, "/")
	matched := false
	for _, p := range patterns {
		if p.exclude != matched {
			continue // cannot change the outcome
		}
		m := p.re.MatchString(file)
		if !m && len(parts) > 1 && p.dirs <= len(parts)-1 {
			m = p.re.MatchString(strings.Join(parts[:p.dirs], "/"))
		}
		if m {
			matched = !p.exclude
		}
	}
	return matched
}

func TestDockerignore(t *testing.T) {
	root := tools.RepoRoot(t)
	patterns, err := parseDockerignore(readRootFile(t, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{".git/config", "data/index.db", "bin/lumen", "lumen.test", "archive/fs/fs.test"} {
		if !ignored(patterns, f) {
			t.Errorf(".dockerignore does not exclude %s", f)
		}
	}
	// Everything go build may need must reach the build context.
	need := []string{"go.mod", "go.sum"}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			need = append(need, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range need {
		if ignored(patterns, f) {
			t.Errorf(".dockerignore excludes %s, which the build needs", f)
		}
	}
}

// ---------------------------------------------------------------------------
// compose.yaml

// interpolate resolves Compose variable references as `docker compose` does
// with none of the variables set, so every ${VAR:-default} takes its default.
// A reference without a default is an error: the development stack must come
// up without an env file.
func interpolate(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			b.WriteByte(c)
			break
		}
		switch n := s[i+1]; {
		case n == '$':
			b.WriteByte('$')
			i++
		case n == '{':
			depth, end := 0, -1
			for j := i + 1; j < len(s) && end < 0; j++ {
				switch s[j] {
				case '{':
					depth++
				case '}':
					if depth--; depth == 0 {
						end = j
					}
				}
			}
			if end < 0 {
				return "", fmt.Errorf("unterminated ${ in %q", s)
			}
			expr := s[i+2 : end]
			name := expr
			var val string
			if k := strings.IndexAny(expr, ":-?+"); k >= 0 {
				name = expr[:k]
				op := expr[k:]
				switch {
				case strings.HasPrefix(op, ":-"), strings.HasPrefix(op, "-"):
					def := strings.TrimPrefix(strings.TrimPrefix(op, ":"), "-")
					v, err := interpolate(def)
					if err != nil {
						return "", err
					}
					val = v
				case strings.HasPrefix(op, ":+"), strings.HasPrefix(op, "+"):
					val = ""
				default:
					return "", fmt.Errorf("${%s} requires %s to be set", expr, name)
				}
			} else {
				return "", fmt.Errorf("${%s} has no default", name)
			}
			if name == "" {
				return "", fmt.Errorf("empty variable name in %q", s)
			}
			b.WriteString(val)
			i = end
		case n == '_' || n >= 'A' && n <= 'Z' || n >= 'a' && n <= 'z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			return "", fmt.Errorf("$%s has no default", s[i+1:j])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

func interpolateAll(v any) (any, error) {
	switch v := v.(type) {
	case string:
		return interpolate(v)
	case map[string]any:
		for k, e := range v {
			r, err := interpolateAll(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			v[k] = r
		}
	case []any:
		for i, e := range v {
			r, err := interpolateAll(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			v[i] = r
		}
	}
	return v, nil
}

func loadCompose(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(readRootFile(t, "compose.yaml"), &doc); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	if doc == nil {
		t.Fatal("compose.yaml is empty")
	}
	r, err := interpolateAll(doc)
	if err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return r.(map[string]any)
}

func asMap(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s is %T, want a mapping", what, v)
	}
	return m
}

// environment returns a service's environment in either the map or the list form.
func environment(t *testing.T, svc map[string]any, name string) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch e := svc["environment"].(type) {
	case nil:
	case map[string]any:
		for k, v := range e {
			if v == nil {
				env[k] = ""
			} else {
				env[k] = fmt.Sprint(v)
			}
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			env[k] = v
		}
	default:
		t.Fatalf("services.%s.environment is %T", name, e)
	}
	return env
}

// containerPorts returns the container-side ports of a service's ports list,
// in short ("[ip:]host:container[/proto]") or long ({target: ...}) syntax.
func containerPorts(t *testing.T, svc map[string]any, name string) []string {
	t.Helper()
	var out []string
	list, _ := svc["ports"].([]any)
	for _, p := range list {
		switch p := p.(type) {
		case map[string]any:
			out = append(out, fmt.Sprint(p["target"]))
		default:
			s := fmt.Sprint(p)
			s, _, _ = strings.Cut(s, "/")
			out = append(out, s[strings.LastIndex(s, ":")+1:])
		}
	}
	return out
}

func TestCompose(t *testing.T) {
	doc := loadCompose(t)
	if _, ok := doc["version"]; ok {
		t.Error("compose.yaml has the obsolete top-level version key")
	}
	services := asMap(t, doc["services"], "services")
	for _, name := range []string{"lumen", "postgres", "minio"} {
		if _, ok := services[name]; !ok {
			t.Fatalf("compose.yaml has no service %q", name)
		}
	}
	var declaredVolumes map[string]any
	if v, ok := doc["volumes"]; ok {
		declaredVolumes = asMap(t, v, "volumes")
	}

	for name, s := range services {
		svc := asMap(t, s, "services."+name)
		if _, ok := svc["image"]; !ok {
			if _, ok := svc["build"]; !ok {
				t.Errorf("services.%s has neither image nor build", name)
			}
		}

		hc, ok := svc["healthcheck"].(map[string]any)
		if !ok {
			t.Errorf("services.%s has no healthcheck", name)
		} else if hc["disable"] == true || hc["test"] == nil {
			t.Errorf("services.%s.healthcheck has no test", name)
		} else if tl, ok := hc["test"].([]any); ok && (len(tl) < 2 || tl[0] == "NONE") {
			t.Errorf("services.%s.healthcheck.test %v runs nothing", name, tl)
		}

		switch deps := svc["depends_on"].(type) {
		case nil:
		case map[string]any:
			for dep, c := range deps {
				if _, ok := services[dep]; !ok {
					t.Errorf("services.%s depends on undefined service %q", name, dep)
				}
				cond, _ := c.(map[string]any)
				if cond["condition"] != "service_healthy" {
					t.Errorf("services.%s.depends_on.%s.condition = %v, want service_healthy", name, dep, cond["condition"])
				}
			}
		default:
			t.Errorf("services.%s.depends_on is %T; use the long form with condition: service_healthy", name, deps)
		}

		vols, _ := svc["volumes"].([]any)
		for _, v := range vols {
			src := ""
			switch v := v.(type) {
			case string:
				src, _, _ = strings.Cut(v, ":")
			case map[string]any:
				if v["type"] == "volume" {
					src = fmt.Sprint(v["source"])
				}
			}
			if src == "" || strings.ContainsAny(src[:1], "./~$") {
				continue // bind mount or anonymous volume
			}
			if _, ok := declaredVolumes[src]; !ok {
				t.Errorf("services.%s uses volume %q, which the top-level volumes do not declare", name, src)
			}
		}
	}

	lumen := asMap(t, services["lumen"], "services.lumen")
	if b, ok := lumen["build"]; !ok {
		t.Error("services.lumen has no build")
	} else {
		ctx, dockerfile := "", "Dockerfile"
		switch b := b.(type) {
		case string:
			ctx = b
		case map[string]any:
			ctx = fmt.Sprint(b["context"])
			if f, ok := b["dockerfile"].(string); ok {
				dockerfile = f
			}
		}
		if _, err := os.Stat(filepath.Join(tools.RepoRoot(t), ctx, dockerfile)); err != nil {
			t.Errorf("services.lumen.build: %v", err)
		}
	}
	ports := containerPorts(t, lumen, "lumen")
	for _, p := range []string{"8080", "11112"} {
		if !slices.Contains(ports, p) {
			t.Errorf("services.lumen.ports %v does not publish container port %s", ports, p)
		}
	}

	env := environment(t, lumen, "lumen")
	for k, want := range map[string]string{
		"LUMEN_INDEX_BACKEND":     "postgres",
		"LUMEN_STORE_BACKEND":     "s3",
		"LUMEN_STORE_S3_ENDPOINT": "minio:9000",
	} {
		if env[k] != want {
			t.Errorf("services.lumen.environment.%s = %q, want %q", k, env[k], want)
		}
	}
	if env["LUMEN_STORE_S3_BUCKET"] == "" {
		t.Error("services.lumen.environment.LUMEN_STORE_S3_BUCKET is not set")
	}

	minioEnv := environment(t, asMap(t, services["minio"], "services.minio"), "minio")
	for lk, mk := range map[string]string{
		"LUMEN_STORE_S3_ACCESS_KEY": "MINIO_ROOT_USER",
		"LUMEN_STORE_S3_SECRET_KEY": "MINIO_ROOT_PASSWORD",
	} {
		if minioEnv[mk] == "" {
			t.Errorf("services.minio.environment.%s is not set", mk)
		} else if env[lk] != minioEnv[mk] {
			t.Errorf("services.lumen.environment.%s = %q, but MinIO's %s = %q", lk, env[lk], mk, minioEnv[mk])
		}
	}
	if len(minioEnv["MINIO_ROOT_PASSWORD"]) < 8 {
		t.Error("MINIO_ROOT_PASSWORD is shorter than the 8 characters MinIO requires")
	}

	pgEnv := environment(t, asMap(t, services["postgres"], "services.postgres"), "postgres")
	dsn, err := url.Parse(env["LUMEN_INDEX_POSTGRES_DSN"])
	if err != nil || (dsn.Scheme != "postgres" && dsn.Scheme != "postgresql") {
		t.Fatalf("services.lumen.environment.LUMEN_INDEX_POSTGRES_DSN = %q is not a postgres:// URL (%v)", env["LUMEN_INDEX_POSTGRES_DSN"], err)
	}
	pass, _ := dsn.User.Password()
	for _, c := range []struct{ what, got, want string }{
		{"host", dsn.Hostname(), "postgres"},
		{"user", dsn.User.Username(), pgEnv["POSTGRES_USER"]},
		{"password", pass, pgEnv["POSTGRES_PASSWORD"]},
		{"database", strings.TrimPrefix(dsn.Path, "/"), pgEnv["POSTGRES_DB"]},
	} {
		if c.want == "" || c.got != c.want {
			t.Errorf("LUMEN_INDEX_POSTGRES_DSN %s = %q, want %q (from services.postgres)", c.what, c.got, c.want)
		}
	}
}

func TestInterpolate(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"${A:-x}":                 "x",
		"${A-x}y":                 "xy",
		"a${A:-${B:-n}}b":         "anb",
		"$${POSTGRES_USER}":       "${POSTGRES_USER}",
		"${A:+alt}":               "",
		"p://${U:-u}:${P:-p}@h/d": "p://u:p@h/d",
	} {
		if got, err := interpolate(in); err != nil || got != want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"${A}", "$A", "${A:?must be set}", "${A"} {
		if _, err := interpolate(in); err == nil {
			t.Errorf("interpolate(%q) succeeded, want an error", in)
		}
	}
}

func TestDockerignoreMatcher(t *testing.T) {
	ps, err := parseDockerignore([]byte("data/\n**/*.test\n*.out\n!keep.out\ndocs/**\n"))
	if err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]bool{
		"data":           true,
		"data/x/y.db":    true,
		"a/b/c.test":     true,
		"c.test":         true,
		"x.out":          true,
		"keep.out":       false,
		"sub/x.out":      false,
		"docs/a.md":      true,
		"cmd/lumen/m.go": false,
	} {
		if got := ignored(ps, f); got != want {
			t.Errorf("ignored(%q) = %v, want %v", f, got, want)
		}
	}
}
