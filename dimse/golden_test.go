package dimse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

// recordingListener keeps the bytes each accepted connection receives.
type recordingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*recordingConn
}

type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// bytes returns a copy of what the connection has received so far.
func (c *recordingConn) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.got.Bytes())
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	rc := &recordingConn{Conn: c}
	l.mu.Lock()
	l.conns = append(l.conns, rc)
	l.mu.Unlock()
	return rc, nil
}

// splitPDUs cuts a byte stream into PDUs.
func splitPDUs(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 6 {
		n := int(binary.BigEndian.Uint32(b[2:6]))
		if 6+n > len(b) {
			break
		}
		out = append(out, b[:6+n])
		b = b[6+n:]
	}
	return out
}

// TestCaptureGolden records the PDUs DCMTK's echoscu and storescu send, checks that each
// decodes and that the golden files are still what DCMTK sends (the same PDU types), and
// rewrites testdata/golden when LUMEN_UPDATE_GOLDEN=1. The files seed the
// fuzz targets.
func TestCaptureGolden(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: ln}
	s := &Server{StoreHandler: &recorder{}, Logger: testLogger(t)}
	go s.Serve(rl)
	defer s.Shutdown(t.Context())
	h, p := hostPort(ln.Addr().String())
	if out, err := runTool(t, "echoscu", "-aet", "ECHOSCU", "-aec", "LUMEN", h, p); err != nil {
		t.Fatal(err, out)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "sr.dcm")
	objs := mustSR(t)
	os.WriteFile(file, objs, 0o644)
	if out, err := runTool(t, "storescu", "-aet", "STORESCU", "-aec", "LUMEN", h, p, file); err != nil {
		t.Fatal(err, out)
	}
	// Let the server finish with both associations before reading what they sent.
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	rl.mu.Lock()
	conns := rl.conns
	rl.mu.Unlock()
	update := os.Getenv("LUMEN_UPDATE_GOLDEN") == "1"
	if update {
		os.MkdirAll("testdata/golden", 0o755)
	}
	names := [][]string{{"echoscu-associate-rq", "echoscu-echo-rq", "echoscu-release-rq"}, {"storescu-associate-rq", "storescu-store-rq-command", "storescu-store-rq-data"}}
	if len(conns) != len(names) {
		t.Fatalf("%d connections recorded, want %d", len(conns), len(names))
	}
	for i, c := range conns {
		pdus := splitPDUs(c.bytes())
		if len(pdus) < len(names[i]) {
			t.Fatalf("connection %d: %d PDUs, want at least %d", i, len(pdus), len(names[i]))
		}
		for j, name := range names[i] {
			if _, err := DecodePDU(pdus[j]); err != nil {
				t.Fatalf("%s from DCMTK does not decode: %v", name, err)
			}
			file := filepath.Join("testdata/golden", name+".pdu")
			if update {
				os.WriteFile(file, pdus[j], 0o644)
				continue
			}
			golden, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (LUMEN_UPDATE_GOLDEN=1 captures it)", err)
			}
			// The implementation version and UIDs vary; the PDU type and the shape do not.
			if golden[0] != pdus[j][0] {
				t.Fatalf("%s: DCMTK now sends PDU type %#x, the golden file holds %#x", name, pdus[j][0], golden[0])
			}
		}
	}
}

func goldenPDUs(t testing.TB) map[string][]byte {
	t.Helper()
	files, _ := filepath.Glob("testdata/golden/*.pdu")
	if len(files) == 0 {
		t.Fatal("no golden PDUs in testdata/golden")
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestGoldenPDUs decodes the PDUs DCMTK sent and checks that re-encoding them yields a
// PDU that decodes to the same thing.
func TestGoldenPDUs(t *testing.T) {
	for name, b := range goldenPDUs(t) {
		t.Run(name, func(t *testing.T) {
			p, err := DecodePDU(b)
			if err != nil {
				t.Fatal(err)
			}
			again, err := DecodePDU(EncodePDU(p))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, again) {
				t.Fatalf("round trip differs:\n%+v\n%+v", p, again)
			}
			if a, ok := p.(*AAssociate); ok {
				if len(a.PresentationContexts) == 0 || a.UserInformation.MaxPDULength == 0 || a.UserInformation.ImplementationClassUID == "" {
					t.Fatalf("association request decoded incompletely: %+v", a)
				}
			}
			if pd, ok := p.(*PDataTF); ok && pd.PDVs[0].Command {
				if _, err := DecodeCommand(pd.PDVs[0].Data); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func FuzzDecodePDU(f *testing.F) {
	for _, b := range goldenPDUs(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePDU(b)
		if err != nil {
			return
		}
		if _, err := DecodePDU(EncodePDU(p)); err != nil {
			t.Fatalf("re-encoded PDU does not decode: %v", err)
		}
		// The streaming reader agrees with the in-memory decoder.
		if _, _, err := ReadPDU(bytes.NewReader(b), 1<<20, nil); err != nil && len(b) <= 1<<20 {
			t.Fatalf("ReadPDU rejects what DecodePDU accepts: %v", err)
		}
	})
}

func FuzzDecodeCommand(f *testing.F) {
	for name, b := range goldenPDUs(f) {
		if p, err := DecodePDU(b); err == nil {
			if pd, ok := p.(*PDataTF); ok && pd.PDVs[0].Command {
				f.Add(pd.PDVs[0].Data)
			}
		}
		_ = name
	}
	f.Add((&Command{CommandField: CStoreRSP, MessageIDBeingRespondedTo: 1, Status: StatusCannotUnderstand, ErrorComment: "x"}).Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			return
		}
		if _, err := DecodeCommand(c.Encode()); err != nil {
			t.Fatalf("re-encoded command does not decode: %v", err)
		}
	})
}

var _ = fmt.Sprint
