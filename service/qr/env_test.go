package qr_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive/fs"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/dimse/dimsetest"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/index/indextest"
	"github.com/lumenpacs/lumen/service/audit"
	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/lumenpacs/lumen/service/qr"
	"github.com/lumenpacs/lumen/service/send"
	"github.com/lumenpacs/lumen/service/transcode"
	"github.com/lumenpacs/lumen/testdata/gen"
)

var quiet = slog.New(slog.DiscardHandler)

// env is Lumen's Query/Retrieve SCP on loopback over a real index and store holding
// the standard corpus, with a move destination DEST.
type env struct {
	trail *audit.Trail
	addr  string // the Q/R SCP
	dest  *dimsetest.Recorder
	objs  []gen.Object
	// stored maps a SOP Instance UID to its data set as stored (after the meta
	// information) and its transfer syntax.
	stored map[string][2]string
}

// corpusObjects is the standard corpus plus one patient whose name Latin-1 cannot hold
// (generated once: every test reads the same objects).
func corpusObjects(t *testing.T) []gen.Object {
	t.Helper()
	objs, err := corpusOnce()
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

var corpusOnce = sync.OnceValues(func() ([]gen.Object, error) {
	objs, err := gen.Corpus(7)
	if err != nil {
		return nil, err
	}
	greek, err := gen.CTSeries(gen.Options{Seed: 7, Patient: greekPatient, StudyDescription: "Greek study", AccessionNumber: "LUM0005", StudyDate: "20240801"}, 1, 16, 16)
	return append(objs, greek...), err
})

// greekPatient's name is outside ISO_IR 100 (Latin-1).
var greekPatient = gen.Patient{ID: "LUMEN-P0003", Issuer: "LUMEN-TEST", Name: "Παπαδόπουλος^Ελένη", BirthDate: "19700101", Sex: "F"}

func newEnv(t *testing.T, backend string) *env {
	t.Helper()
	st, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx := indextest.Open(t, backend)
	p := &ingest.Pipeline{Store: st, Index: idx, Logger: quiet}
	e := &env{dest: &dimsetest.Recorder{}, objs: corpusObjects(t), stored: map[string][2]string{}}
	for _, o := range e.objs {
		if _, err := p.IngestFile(context.Background(), bytes.NewReader(o.Data), int64(len(o.Data)), ingest.Source{Via: "test"}); err != nil {
			t.Fatalf("ingest %s: %v", o.Name, err)
		}
		r := bytes.NewReader(o.Data)
		ts, err := transcode.SkipMeta(r)
		if err != nil {
			t.Fatal(err)
		}
		e.stored[o.SOPInstanceUID] = [2]string{string(o.Data[len(o.Data)-r.Len():]), ts}
	}
	e.trail = audit.New(idx, nil, quiet)
	t.Cleanup(e.trail.Close)

	destPort := dimsetest.Serve(t, &dimse.Server{AETitle: "DEST", StoreHandler: e.dest, Logger: quiet})
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downPort := down.Addr().(*net.TCPAddr).Port
	down.Close() // nothing listens there any more
	peers := &send.Peers{List: []send.Peer{
		{AETitle: "DEST", Host: "127.0.0.1", Port: destPort},
		{AETitle: "DOWN", Host: "127.0.0.1", Port: downPort},
		{AETitle: "NOPORT", Host: "127.0.0.1"},
	}}
	port := dimsetest.Serve(t, &dimse.Server{
		AETitle:         "LUMEN",
		FindHandler:     &qr.FindSCP{Index: idx, AETitle: "LUMEN", Audit: e.trail, Log: quiet},
		RetrieveHandler: &qr.RetrieveSCP{Index: idx, Peers: peers, Audit: e.trail, Log: quiet, Sender: &send.Sender{Store: st, CallingAETitle: "LUMEN", Logger: quiet}},
		Logger:          quiet,
	})
	e.addr = "127.0.0.1:" + strconv.Itoa(port)
	return e
}

// dial opens an association as WS proposing the FIND and MOVE models.
func (e *env) dial(t *testing.T) *dimse.Client {
	t.Helper()
	var pcs []dimse.ProposedContext
	for _, m := range []string{dimse.PatientRootFind, dimse.StudyRootFind, dimse.PatientRootMove, dimse.StudyRootMove} {
		pcs = append(pcs, dimse.ProposedContext{AbstractSyntax: m, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian}})
	}
	c, err := dimse.Dial(context.Background(), e.addr, dimse.DialConfig{CallingAETitle: "WS", CalledAETitle: "LUMEN", Contexts: pcs, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Release() })
	return c
}

// audits returns the audit records of actor ae:WS for action, newest first.
func (e *env) audits(t *testing.T, action string) []index.AuditRecord {
	t.Helper()
	list, err := e.trail.Search(context.Background(), index.AuditQuery{Actor: "ae:WS", Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// ident encodes an identifier (Explicit VR Little Endian, the only syntax proposed).
func ident(t *testing.T, level string, elems ...*dcm.Element) []byte {
	t.Helper()
	ds := &dcm.Dataset{}
	if level != "" {
		ds.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", level))
	}
	for _, e := range elems {
		ds.Set(e)
	}
	b, err := ds.Encode(dcm.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// str is a string element; without values it is a return key (universal matching).
func str(tag dcm.Tag, vr string, values ...string) *dcm.Element {
	if len(values) == 0 {
		return dcm.NewElement(tag, vr, nil)
	}
	return dcm.NewString(tag, vr, values...)
}

// filter returns the objects for which keep is true, in corpus order.
func filter(objs []gen.Object, keep func(gen.Object) bool) []gen.Object {
	var out []gen.Object
	for _, o := range objs {
		if keep(o) {
			out = append(out, o)
		}
	}
	return out
}
