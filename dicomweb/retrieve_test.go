package dicomweb_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dicomweb"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/testdata/gen"
)

// streamingStore hides the files of the filesystem store behind plain readers, as a
// store without files (S3) hands them out.
type streamingStore struct{ dicomweb.Store }

func (s streamingStore) Get(ctx context.Context, key string) (io.ReadCloser, archive.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{rc, rc}, info, nil
}

// rawRetrieve GETs url and returns the response with its whole body.
func rawRetrieve(t *testing.T, e *env, url, accept string) (*http.Response, []byte) {
	t.Helper()
	resp := e.do(t, http.MethodGet, url, nil, "Accept", accept)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v: %s", url, resp.StatusCode, err, b)
	}
	return resp, b
}

// wantMultipart is the body mime/multipart writes for these parts (headers as
// received, bodies as given) with the response's boundary.
func wantMultipart(t *testing.T, resp *http.Response, headers []textproto.MIMEHeader, bodies [][]byte) []byte {
	t.Helper()
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.SetBoundary(params["boundary"]); err != nil {
		t.Fatal(err)
	}
	for i, h := range headers {
		pw, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(bodies[i])
	}
	mw.Close()
	return buf.Bytes()
}

// zeroCopySince is how many bytes went to a connection zero-copy since the count was
// from, waiting up to 5 s for it to reach want: the server counts a piece once it is
// sent, which can be after the client has read it.
func zeroCopySince(from, want int64) int64 {
	deadline := time.Now().Add(5 * time.Second)
	for dicomweb.ZeroCopyBytes()-from < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return dicomweb.ZeroCopyBytes() - from
}

// zeroCopyWanted is how many bytes of a body of n bytes with parts parts at least go
// zero-copy: from the filesystem store, all but the first write of each part (which
// holds its header) and the close delimiter; from another store, none.
func zeroCopyWanted(store string, n, parts int) int64 {
	if store != "fs" {
		return 0
	}
	return int64(n) - int64(parts+1)*32<<10
}

// TestRetrieveContentLength: a WADO-RS retrieval whose parts all go out as stored, or
// with their header corrected in place, announces the length of the whole multipart
// body (so that it is not chunked and the files can go to the connection zero-copy);
// the body is what mime/multipart writes for those parts, each part byte for byte the
// stored object, on the filesystem store and on a store without files. A retrieval
// with a conversion to another transfer syntax is chunked. A single instance as
// application/dicom and WADO-URI announce the object's length too.
func TestRetrieveContentLength(t *testing.T) {
	objs, err := gen.CTSeries(gen.Options{Seed: 31}, 5, 256, 256)
	if err != nil {
		t.Fatal(err)
	}
	for _, store := range []string{"fs", "streaming"} {
		t.Run(store, func(t *testing.T) {
			e := newEnv(t, "sqlite", func(s *dicomweb.Service) {
				if store == "streaming" {
					s.Store = streamingStore{s.Store}
				}
			})
			var datas [][]byte
			for _, o := range objs {
				datas = append(datas, o.Data)
			}
			if code, resp := e.stow(t, "/studies", datas...); code != http.StatusOK {
				t.Fatalf("STOW: %d %v", code, resp)
			}
			study := e.base + "/studies/" + objs[0].StudyUID
			check := func(t *testing.T, want func(i int, part []byte)) {
				t.Helper()
				for _, accept := range []string{acceptDICOM + "; transfer-syntax=*", acceptDICOM} {
					zc := dicomweb.ZeroCopyBytes()
					resp, body := rawRetrieve(t, e, study, accept)
					// The files of the filesystem store go to the connection
					// zero-copy, but for the first bytes of each part, which
					// fill the write that holds its header.
					if want := zeroCopyWanted(store, len(body), len(objs)); zeroCopySince(zc, want) < want || want == 0 && dicomweb.ZeroCopyBytes() != zc {
						t.Fatalf("%d of %d bytes went zero-copy", dicomweb.ZeroCopyBytes()-zc, len(body))
					}
					if resp.ContentLength != int64(len(body)) || len(resp.TransferEncoding) != 0 {
						t.Fatalf("Content-Length %d, Transfer-Encoding %v, body of %d bytes", resp.ContentLength, resp.TransferEncoding, len(body))
					}
					parts := readParts(t, &http.Response{StatusCode: http.StatusOK, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body))}, "application/dicom")
					if len(parts) != len(objs) {
						t.Fatalf("%d parts", len(parts))
					}
					var headers []textproto.MIMEHeader
					var bodies [][]byte
					for i, p := range parts {
						want(i, p.body)
						if p.header.Get("Content-Length") != strconv.Itoa(len(p.body)) {
							t.Fatalf("part %d: Content-Length %s for %d bytes", i, p.header.Get("Content-Length"), len(p.body))
						}
						headers, bodies = append(headers, p.header), append(bodies, p.body)
					}
					if !bytes.Equal(body, wantMultipart(t, resp, headers, bodies)) {
						t.Fatal("the multipart body is not what mime/multipart writes for its parts")
					}
				}
				o := objs[1]
				for _, single := range []struct{ url, accept string }{
					{instanceURL(e, o), "application/dicom; transfer-syntax=*"},
					{e.srv.URL + "/wado?requestType=WADO&studyUID=" + o.StudyUID + "&seriesUID=" + o.SeriesUID + "&objectUID=" + o.SOPInstanceUID + "&contentType=application/dicom&transferSyntax=*", "*/*"},
				} {
					zc := dicomweb.ZeroCopyBytes()
					resp, body := rawRetrieve(t, e, single.url, single.accept)
					if resp.ContentLength != int64(len(body)) {
						t.Fatalf("%s: Content-Length %d for %d bytes", single.url, resp.ContentLength, len(body))
					}
					if want := zeroCopyWanted(store, len(body), 0); zeroCopySince(zc, want) < want || want == 0 && dicomweb.ZeroCopyBytes() != zc {
						t.Fatalf("%s: %d of %d bytes went zero-copy", single.url, dicomweb.ZeroCopyBytes()-zc, len(body))
					}
					want(1, body)
				}
			}
			check(t, func(i int, part []byte) {
				if !bytes.Equal(part, objs[i].Data) {
					t.Fatalf("part %d is not the stored object", i)
				}
			})

			// The patient corrected in the index: every part's header is edited on
			// the way out, and the lengths are still known in advance.
			const corrected = "Corrected^Longer^Name^Than^Before"
			name := corrected
			if _, err := e.idx.(index.Identity).UpdatePatient(context.Background(), index.PatientKey{ID: objs[0].PatientID, Issuer: issuerOf(t, objs[0])}, index.Demographics{Name: &name}, index.Change{Source: "test"}); err != nil {
				t.Fatal(err)
			}
			check(t, func(i int, part []byte) {
				if len(part) == len(objs[i].Data) {
					t.Fatalf("part %d: the corrected object has the stored length", i)
				}
				checkCorrected(t, objs[i], part, corrected)
			})

			// Converted to Implicit VR Little Endian: lengths not known, chunked.
			resp := e.do(t, http.MethodGet, study, nil, "Accept", acceptDICOM+"; transfer-syntax=1.2.840.10008.1.2")
			if resp.ContentLength != -1 || len(resp.TransferEncoding) == 0 {
				t.Fatalf("converted: Content-Length %d, Transfer-Encoding %v", resp.ContentLength, resp.TransferEncoding)
			}
			if parts := readParts(t, resp, "application/dicom"); len(parts) != len(objs) || !strings.HasSuffix(parts[0].header.Get("Content-Type"), "=1.2.840.10008.1.2") {
				t.Fatalf("converted: %d parts", len(parts))
			}
		})
	}
}

// TestRetrieveStoredLengthDiffers: a stored file shorter or longer than the index
// records breaks a retrieval off (the Content-Length already promised its length)
// and is logged; the client sees an incomplete body, never a wrong one, and the next
// request on a new connection is answered.
func TestRetrieveStoredLengthDiffers(t *testing.T) {
	objs, err := gen.CTSeries(gen.Options{Seed: 32}, 3, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []string{"shorter", "longer"} {
		for _, store := range []string{"fs", "streaming"} {
			t.Run(change+"/"+store, func(t *testing.T) {
				var logs syncBuffer
				e := newEnv(t, "sqlite", func(s *dicomweb.Service) {
					s.Logger = slog.New(slog.NewTextHandler(&logs, nil))
					if store == "streaming" {
						s.Store = streamingStore{s.Store}
					}
				})
				for _, o := range objs {
					if code, resp := e.stow(t, "/studies", o.Data); code != http.StatusOK {
						t.Fatalf("STOW: %d %v", code, resp)
					}
				}
				in, err := e.idx.Instance(context.Background(), objs[1].SOPInstanceUID)
				if err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(e.store.Root(), filepath.FromSlash(in.BlobKey))
				data := objs[1].Data
				if change == "shorter" {
					data = data[:len(data)-100]
				} else {
					data = append(bytes.Clone(data), make([]byte, 100)...)
				}
				if err := os.WriteFile(p, data, 0o640); err != nil {
					t.Fatal(err)
				}
				for _, url := range []string{e.base + "/studies/" + objs[0].StudyUID, instanceURL(e, objs[1])} {
					resp := e.do(t, http.MethodGet, url, nil, "Accept", acceptDICOM+"; transfer-syntax=*")
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if !errors.Is(err, io.ErrUnexpectedEOF) || resp.ContentLength <= int64(len(b)) {
						t.Fatalf("%s: Content-Length %d, %d bytes read, %v", url, resp.ContentLength, len(b), err)
					}
					if change == "longer" && bytes.Contains(b, data[len(data)-200:]) {
						t.Fatalf("%s: the changed object was sent", url)
					}
				}
				if !strings.Contains(logs.String(), "not as long as recorded") {
					t.Fatalf("not logged: %s", logs.String())
				}
				resp, body := rawRetrieve(t, e, instanceURL(e, objs[2]), acceptDICOM+"; transfer-syntax=*")
				if resp.ContentLength != int64(len(body)) || !bytes.Contains(body, objs[2].Data) {
					t.Fatal("the next retrieval is not answered")
				}
			})
		}
	}
}

// TestRetrieveConvertedChunked: an Implicit VR Little Endian object (converted to
// Explicit VR Little Endian by default) makes the study's answer chunked, with the
// other parts as stored.
func TestRetrieveConvertedChunked(t *testing.T) {
	objs, err := gen.CTSeries(gen.Options{Seed: 33}, 3, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.dcm"), filepath.Join(dir, "out.dcm")
	os.WriteFile(in, objs[1].Data, 0o644)
	if b, err := exec.Command(dcmtk(t, "dcmconv"), "+ti", in, out).CombinedOutput(); err != nil {
		t.Fatalf("dcmconv: %v\n%s", err, b)
	}
	implicit, _ := os.ReadFile(out)
	e := newEnv(t, "sqlite", nil)
	if code, resp := e.stow(t, "/studies", objs[0].Data, implicit, objs[2].Data); code != http.StatusOK {
		t.Fatalf("STOW: %d %v", code, resp)
	}
	resp := e.do(t, http.MethodGet, e.base+"/studies/"+objs[0].StudyUID, nil, "Accept", acceptDICOM)
	if resp.ContentLength != -1 {
		t.Fatalf("Content-Length %d", resp.ContentLength)
	}
	parts := readParts(t, resp, "application/dicom")
	if len(parts) != 3 || !bytes.Equal(parts[0].body, objs[0].Data) || !bytes.Equal(parts[2].body, objs[2].Data) ||
		parts[1].header.Get("Content-Length") != "" || parts[1].header.Get("Content-Type") != "application/dicom; transfer-syntax=1.2.840.10008.1.2.1" {
		t.Fatalf("%d parts", len(parts))
	}
}
