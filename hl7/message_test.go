package hl7

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestBuild(t *testing.T) {
	m, err := NewMessage(Header{
		SendingApplication: "LUMEN", SendingFacility: "RADIOLOGY",
		ReceivingApplication: "EMR", ReceivingFacility: "NORTH|CLINIC",
		Time: time.Date(2024, 3, 12, 18, 0, 0, 0, time.UTC),
		Type: "ADT", Event: "A08", Structure: "ADT_A01", ControlID: "L-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ path, v string }{
		{"EVN-2", "20240312180000"},
		{"PID-3[2].1", "B&2"},
		{"PID-3.1", "A1"},
		{"PID-3[2].4", "ISSUER"},
		{"PID-5.1", "O'NEIL^SMITH"},
		{"PID-5.2", "MARY ANN"},
		{"PID-7", Null},
		{"PID-11.1.2", "7"},
		{"NTE-3", "line one\r\nline two \\ end"},
		{"OBX-5", "first"},
		{"OBX[2]-5", "second"},
	} {
		if err := m.Set(s.path, s.v); err != nil {
			t.Fatalf("Set(%s): %v", s.path, err)
		}
	}
	want := segs(`MSH|^~\&|LUMEN|RADIOLOGY|EMR|NORTH\F\CLINIC|20240312180000+0000||ADT^A08^ADT_A01|L-1|P|2.5.1`,
		`EVN||20240312180000`,
		`PID|||A1~B\T\2^^^ISSUER||O'NEIL\S\SMITH^MARY ANN||""||||&7`,
		`NTE|||line one\X0D\\X0A\line two \E\ end`,
		`OBX|||||first`,
		`OBX|||||second`)
	if got := string(m.Encode()); got != want {
		t.Fatalf("Encode\n got  %q\n want %q", got, want)
	}
	back := mustParse(t, m.Encode())
	for path, want := range map[string]string{
		"MSH-6": "NORTH|CLINIC", "PID-3[2].1": "B&2", "PID-5": "O'NEIL^SMITH", "NTE-3": "line one\r\nline two \\ end",
		"OBX[2]-5": "second", "PID-11.1.2": "7",
	} {
		if got := back.Get(path).String(); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	if !back.Get("PID-7").Null() {
		t.Error("PID-7 is not null")
	}

	// Replacing a whole field drops its components; naming a component keeps the rest.
	_ = m.Set("PID-5.2", "JANE")
	if got := m.Get("PID-5").Raw(); got != `O'NEIL\S\SMITH^JANE` {
		t.Errorf("PID-5 = %q", got)
	}
	_ = m.Set("PID-5", "X")
	if got := m.Get("PID-5").Raw(); got != "X" {
		t.Errorf("PID-5 = %q", got)
	}
	// Errors.
	for _, path := range []string{"MSH-1", "MSH-2", "OBX[4]-1", "pid-3", "PID", "PID-0"} {
		if err := m.Set(path, "x"); err == nil {
			t.Errorf("Set(%s) did not fail", path)
		}
	}
	if err := m.SetRaw("PID-5.1", "A^B"); err == nil {
		t.Error("SetRaw of a component with a component separator did not fail")
	}
	if err := m.SetRaw("PID-5", "A^B&C"); err != nil {
		t.Error(err)
	}
	if _, err := m.AddSegment("MSH"); err == nil {
		t.Error("a second MSH was added")
	}
	if _, err := NewMessage(Header{Charset: "KOI8-R"}); err == nil {
		t.Error("NewMessage with an unknown charset did not fail")
	}
}

// TestCharsetWrite: Encode writes the message's set; MSH-18 set later switches it;
// characters the set lacks become '?'.
func TestCharsetWrite(t *testing.T) {
	m, err := NewMessage(Header{Type: "ADT", Event: "A08", ControlID: "1", Charset: "8859/1"})
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Set("PID-5.1", "MÜLLER")
	_ = m.Set("PID-5.2", "ŁUKASZ")
	b := m.Encode()
	if !bytes.Contains(b, []byte("M\xdcLLER^?UKASZ")) {
		t.Errorf("Latin-1 encoding: %q", b)
	}
	if err := m.Set("MSH-18", "UNICODE UTF-8"); err != nil {
		t.Fatal(err)
	}
	if b := m.Encode(); !bytes.Contains(b, []byte("MÜLLER^ŁUKASZ")) {
		t.Errorf("UTF-8 encoding: %q", b)
	}
	if err := m.Set("MSH-18", "EBCDIC"); err == nil {
		t.Error("MSH-18 EBCDIC accepted")
	}
	if m.Charset() != "UNICODE UTF-8" {
		t.Errorf("charset %s after a refused change", m.Charset())
	}
}

func TestDefaultCharset(t *testing.T) {
	b := []byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\rPID|1||X||M\xdcLLER\r")
	if _, err := Parse(b); err == nil {
		t.Fatal("undeclared Latin-1 accepted")
	}
	m, err := Options{DefaultCharset: "8859/1"}.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Get("PID-5").String(); got != "MÜLLER" {
		t.Errorf("PID-5 %q", got)
	}
	if !bytes.Equal(m.Encode(), b) {
		t.Errorf("Encode %q", m.Encode())
	}
	if _, err := (Options{DefaultCharset: "EBCDIC"}).Parse(b); err == nil {
		t.Error("an unknown default charset accepted")
	}
}

func TestLocation(t *testing.T) {
	for _, c := range []struct {
		path string
		loc  Location
		back string
	}{
		{"PID-3[2].1.4", Location{Segment: "PID", Field: 3, Rep: 2, Component: 1, Sub: 4}, ""},
		{"PID-5", Location{Segment: "PID", Field: 5}, ""},
		{"PID-5[1]", Location{Segment: "PID", Field: 5, Rep: 1}, ""},
		{"PID-5.2", Location{Segment: "PID", Field: 5, Rep: 1, Component: 2}, ""},
		{"PID-5[1].2", Location{Segment: "PID", Field: 5, Rep: 1, Component: 2}, "PID-5.2"},
		{"OBX[3]-5", Location{Segment: "OBX", Seq: 3, Field: 5}, ""},
		{"OBX[1]-5", Location{Segment: "OBX", Seq: 1, Field: 5}, "OBX-5"},
		{"ZP1", Location{Segment: "ZP1"}, ""},
		{"MSH-9.2", Location{Segment: "MSH", Field: 9, Rep: 1, Component: 2}, ""},
	} {
		got, err := ParseLocation(c.path)
		if err != nil {
			t.Errorf("%s: %v", c.path, err)
			continue
		}
		if got != c.loc {
			t.Errorf("%s: %+v, want %+v", c.path, got, c.loc)
		}
		back := c.back
		if back == "" {
			back = c.path
		}
		if got.String() != back {
			t.Errorf("%s: String %q", c.path, got.String())
		}
	}
	for _, bad := range []string{"", "PI", "pid-3", "1ID-3", "PID-", "PID-0", "PID-3[0]", "PID-3[2", "PID-3.", "PID-3.1.2.3", "PID 3", "PID-99999999", "PID[2", "PID-3x"} {
		if _, err := ParseLocation(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if s := (Location{Seq: 4}).String(); s != "segment 4" {
		t.Errorf("unknown segment: %q", s)
	}
	e := Errorf(Location{Segment: "PID", Seq: 2, Field: 3, Rep: 2, Component: 1}, CodeDataType, "bad")
	if e.Error() != "hl7: PID[2]-3[2].1: Data type error (102): bad" {
		t.Errorf("Error() %q", e.Error())
	}
}

func TestEscapes(t *testing.T) {
	d := DefaultDelimiters
	d.Truncation = '#'
	for _, c := range []struct{ raw, want string }{
		{`a\F\b\S\c\T\d\R\e\E\f`, `a|b^c&d~e\f`},
		{`\P\`, `#`},
		{`\X41424344\`, `ABCD`},
		{`\X0D0A\`, "\r\n"},
		{`\xc3a9\`, `\xc3a9\`}, // lower-case x: unknown
		{`\X4\`, `\X4\`},
		{`\XZZ\`, `\XZZ\`},
		{`\H\bold\N\`, `bold`},
		{`a\.br\b`, "a\nb"},
		{`a\.sp\b`, "a\nb"},
		{`a\.sp3\b`, "a\n\n\nb"},
		{`a\.sp 99999\b`, "a" + strings.Repeat("\n", 10) + "b"},
		{`a\.sk2\b`, "a  b"},
		{`a\.in+4\\.ti-2\\.fi\\.nf\\.ce\b`, "a\nb"},
		{`\Zcustom\`, `\Zcustom\`},
		{`\.xx\`, `\.xx\`},
		{`unterminated \F`, `unterminated \F`},
		{`\\`, `\\`},
		{`\\F\`, `\\F\`},
		{`x\E\F\`, `x\F\`},
	} {
		if got := unescape(d, csUTF8, c.raw); got != c.want {
			t.Errorf("unescape(%q) = %q, want %q", c.raw, got, c.want)
		}
	}
	// Without a truncation character, \P\ is left as it is.
	if got := unescape(DefaultDelimiters, csUTF8, `\P\`); got != `\P\` {
		t.Errorf("\\P\\ without truncation: %q", got)
	}
	// \X..\ decodes its bytes in the message's set.
	latin1, _ := lookupCharset("8859/1")
	if got := unescape(d, latin1, `\XE9\`); got != "é" {
		t.Errorf("\\XE9\\ in 8859/1: %q", got)
	}
	if got := unescape(d, csUTF8, `\XC3A9\`); got != "é" {
		t.Errorf("\\XC3A9\\ in UTF-8: %q", got)
	}
	for _, s := range []string{"", "plain", "a|b^c~d\\e&f#g", "\r\n", "ünïcödé \\E\\", "##"} {
		esc := d.EscapeValue(s)
		if strings.ContainsAny(esc, "|^~&#\r\n") {
			t.Errorf("EscapeValue(%q) = %q keeps a delimiter", s, esc)
		}
		if got := unescape(d, csUTF8, esc); got != s {
			t.Errorf("unescape(EscapeValue(%q)) = %q", s, got)
		}
	}
}

// TestJISEscapes: \C and \M are read only as complete designations, also where an
// escape character is a byte of a kanji.
func TestJISEscapes(t *testing.T) {
	d := DefaultDelimiters
	for _, c := range []struct{ in, want string }{
		{`\M2442\;3K\\C2842\`, "\x1b$B;3K\\\x1b(B"},          // 山本: 本 is K\ (0x4B 0x5C)
		{`\M242844\0!\C2842\`, "\x1b$(D0!\x1b(B"},            // JIS X 0212
		{`\C2849\1\C2842\`, "\x1b(I1\x1b(B"},                 // katakana
		{`\M2442\%^\C2842\^X`, "\x1b$B%^\x1b(B^X"},           // マ is %^
		{`\C2D41\abc`, `\C2D41\abc`},                         // Latin-1 G1: not Japanese
		{"\x1b$B;3K\\\x1b(B\\E\\", "\x1b$B;3K\\\x1b(B\\E\\"}, // raw ESC, then \E\
		{`\Zlongsequence\C2842\`, `\Zlongsequence\C2842\`},   // pairing in ASCII
		{`plain`, `plain`},
		{"\x1b$B\\C2842\\0\x1b(B", "\x1b$B\\C2842\\0\x1b(B"}, // kanji entered by ESC: no escapes
		{`\C2442\;3\C2842\`, "\\C2442\\;3\x1b(B"},            // \C names a single-byte set
		{`\M2842\x`, `\M2842\x`},                             // \M a multi-byte one
	} {
		if got := string(jisEscapes([]byte(c.in), d)); got != c.want {
			t.Errorf("jisEscapes(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestValueNavigation(t *testing.T) {
	m := mustParse(t, readSample(t, "adt_a01_v23"))
	pid := m.Segment("PID")
	if pid == nil || pid.ID() != "PID" || pid.NumFields() != 13 {
		t.Fatalf("PID: %v", pid)
	}
	f := pid.Field(3)
	if f.NumReps() != 2 || f.Rep(2).NumComponents() != 5 || f.NumComponents() != 5 || f.Rep(2).Component(4).String() != "NHS" {
		t.Errorf("PID-3: %d reps, %d components", f.NumReps(), f.Rep(2).NumComponents())
	}
	if c := f.Rep(2).Component(4); c.Rep(1).String() != "NHS" || c.Component(1).String() != "NHS" || c.Component(2).Present() || c.NumSubs() != 1 {
		t.Error("a component's own navigation")
	}
	if v := f.Rep(3); v.Present() || v.Component(1).Present() || v.NumComponents() != 0 || v.Sub(1).Present() {
		t.Error("an absent repetition is present")
	}
	msh := m.Segment("MSH")
	if msh.NumFields() != 12 || msh.Field(1).String() != "|" || msh.Field(2).String() != `^~\&` || msh.Field(2).NumComponents() != 1 || msh.Field(2).Component(2).Present() {
		t.Error("MSH-1, MSH-2")
	}
	if m.Segment("ZZZ") != nil || len(m.All("PID")) != 1 || pid.Field(0).Present() || m.Get("bad path").Present() {
		t.Error("absent segments")
	}
	if err := m.CheckVersion(); err != nil {
		t.Error(err)
	}
	m2 := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.2\r"))
	if err := m2.CheckVersion(); err == nil || err.Code != CodeUnsupportedVersion || err.Field != 12 {
		t.Errorf("CheckVersion 2.2: %v", err)
	}
}

// TestLimits: segment and field counts are bounded.
func TestLimits(t *testing.T) {
	hdr := "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\r"
	_, err := Parse([]byte(hdr + strings.Repeat("NTE|1\r", DefaultMaxSegments)))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeInternal || e.Segment != "NTE" || e.Seq != DefaultMaxSegments {
		t.Errorf("too many segments: %v", err)
	}
	if _, err := Parse([]byte(hdr + strings.Repeat("NTE|1\r", DefaultMaxSegments-1))); err != nil {
		t.Errorf("%d segments: %v", DefaultMaxSegments, err)
	}
	_, err = Parse([]byte(hdr + "PID" + strings.Repeat("|", DefaultMaxFields+1) + "\r"))
	if !errors.As(err, &e) || e.Code != CodeInternal || e.Segment != "PID" {
		t.Errorf("too many fields: %v", err)
	}
	if _, err := Parse([]byte(hdr + "PID" + strings.Repeat("|", DefaultMaxFields) + "\r")); err != nil {
		t.Errorf("%d fields: %v", DefaultMaxFields, err)
	}
	if _, err := (Options{MaxSegments: 2}).Parse([]byte(hdr + "PID|1\rPV1|1\r")); err == nil {
		t.Error("Options.MaxSegments ignored")
	}
}

// TestMemoryBound: hostile shapes take a few times their size.
func TestMemoryBound(t *testing.T) {
	hdr := "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\r"
	wide := "ZZ1" + strings.Repeat("|", DefaultMaxFields-1) + "\r"
	for name, in := range map[string]string{
		"fields":         hdr + strings.Repeat(wide, DefaultMaxSegments-1),
		"short segments": hdr + strings.Repeat("ZZ1\r", DefaultMaxSegments-1),
		"blank lines":    hdr + strings.Repeat("\r", 1<<20),
		"components":     hdr + "PID|" + strings.Repeat("^~&", 1<<18) + "\r",
		"escapes":        hdr + "PID|" + strings.Repeat(`\X41\`, 1<<18) + "\r",
	} {
		b := []byte(in)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		m, err := Parse(b)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		limit := uint64(6*len(b) + 256<<10)
		t.Logf("%s: %d bytes in, %d allocated", name, len(b), alloc)
		if alloc > limit {
			t.Errorf("%s: %d bytes allocated for %d bytes in (limit %d)", name, alloc, len(b), limit)
		}
		runtime.KeepAlive(m)
	}
}

// TestLineEnds: CR, CR LF and LF end segments; blank lines are skipped; a lone LF in a
// CR message is data.
func TestLineEnds(t *testing.T) {
	want := segs(`MSH|^~\&|A|B|C|D|20240101||ADT^A08|1|P|2.5`, `PID|1`, `PV1|1`)
	for name, in := range map[string]string{
		"CR":          "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\rPID|1\rPV1|1\r",
		"CRLF":        "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\r\nPID|1\r\nPV1|1\r\n",
		"LF":          "MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\nPID|1\nPV1|1",
		"blank lines": "\r\nMSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\r\r\nPID|1\r  \rPV1|1\r\r",
	} {
		m, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := string(m.Encode()); got != want {
			t.Errorf("%s: %q", name, got)
		}
	}
	m := mustParse(t, []byte("MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5\rNTE|1||one\ntwo\r"))
	if got := m.Get("NTE-3").String(); got != "one\ntwo" {
		t.Errorf("lone LF: %q", got)
	}
}

// TestNoPHIInErrors: error texts never repeat field content beyond the header.
func TestNoPHIInErrors(t *testing.T) {
	for _, s := range samples(t) {
		if s.Error == nil {
			continue
		}
		for _, secret := range []string{"JANE", "MÜLLER", "MULLER", "HANS", "RICHARD", "MILE", "continued"} {
			if strings.Contains(strings.ToUpper(s.Error.Text), strings.ToUpper(secret)) {
				t.Errorf("%s: the error text names %q", s.Name, secret)
			}
		}
	}
}

// TestUndecodableLocation: a byte that is not UTF-8 is located whatever the line ends.
func TestUndecodableLocation(t *testing.T) {
	for _, sep := range []string{"\r", "\r\n", "\n"} {
		b := []byte(strings.Join([]string{"MSH|^~\\&|A|B|C|D|20240101||ADT^A08|1|P|2.5", "", "NK1|1|X", "NK1|2|A~B^C&D\xe9"}, sep) + sep)
		_, err := Parse(b)
		var e *Error
		want := Location{Segment: "NK1", Seq: 2, Field: 2, Rep: 2, Component: 2, Sub: 2}
		if !errors.As(err, &e) || e.Location != want || e.Code != CodeDataType {
			t.Errorf("%q: %v, want at %s", sep, err, want)
		}
	}
}
