package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/archivetest"
	"github.com/lumenpacs/lumen/archive/s3"
	"github.com/lumenpacs/lumen/archive/s3/miniotest"
)

const mib = 1 << 20

func TestMain(m *testing.M) {
	code := m.Run()
	miniotest.StopShared()
	os.Exit(code)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestContract runs the shared archive.Store suite, one new bucket per store.
func TestContract(t *testing.T) {
	srv := miniotest.Shared(t)
	archivetest.Run(t, func(t *testing.T) archive.Store { return srv.NewStore(t) })
}

// TestContractPrefix runs the suite on stores sharing one bucket under fresh prefixes.
func TestContractPrefix(t *testing.T) {
	srv := miniotest.Shared(t)
	bucket := miniotest.BucketName()
	// Something outside every prefix, which no store may list.
	outside := newStore(t, srv.Config(bucket))
	mustPut(t, outside, "zz/outside", []byte("x"))
	var n atomic.Int64
	archivetest.Run(t, func(t *testing.T) archive.Store {
		cfg := srv.Config(bucket)
		cfg.Prefix = fmt.Sprintf("/p%d/lumen/", n.Add(1))
		return newStore(t, cfg)
	})
}

func newStore(t testing.TB, cfg s3.Config) *s3.Store {
	t.Helper()
	s, err := s3.New(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawClient talks to the server directly, to look behind the store.
func rawClient(t testing.TB, srv *miniotest.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(srv.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustPut(t testing.TB, s archive.Store, key string, data []byte) archive.ObjectInfo {
	t.Helper()
	info, err := s.Put(testCtx(t), key, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// onlyReader hides everything but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

var errBroken = errors.New("reader broke")

// brokenReader yields n bytes of r, then fails.
type brokenReader struct {
	r io.Reader
	n int64
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errBroken
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

func sumGet(t testing.TB, s archive.Store, key string) ([32]byte, int64) {
	t.Helper()
	rc, _, err := s.Get(testCtx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("Get(%q) read: %v", key, err)
	}
	return [32]byte(h.Sum(nil)), n
}

func assertAbsent(t testing.TB, s archive.Store, key string) {
	t.Helper()
	if _, err := s.Stat(testCtx(t), key); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat(%q) = %v, want ErrNotFound", key, err)
	}
}

// pendingUploads lists the incomplete multipart uploads of key. (MinIO lists uploads
// reliably only for an exact object name.)
func pendingUploads(t testing.TB, c *minio.Client, bucket, key string) []string {
	t.Helper()
	var ids []string
	for u := range c.ListIncompleteUploads(testCtx(t), bucket, key, true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		ids = append(ids, u.Key+"@"+u.UploadID)
	}
	return ids
}

// waitNoUploads waits for background aborts to clear the incomplete uploads of key.
func waitNoUploads(t testing.TB, c *minio.Client, bucket, key string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ups := pendingUploads(t, c, bucket, key)
		if len(ups) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("incomplete uploads left: %v", ups)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNewCreatesBucket(t *testing.T) {
	srv := miniotest.Shared(t)
	raw := rawClient(t, srv)
	bucket := miniotest.BucketName()
	if ok, err := raw.BucketExists(testCtx(t), bucket); err != nil || ok {
		t.Fatalf("bucket exists before New: %v, %v", ok, err)
	}
	s := newStore(t, srv.Config(bucket))
	if ok, err := raw.BucketExists(testCtx(t), bucket); err != nil || !ok {
		t.Fatalf("bucket after New: exists=%v, %v", ok, err)
	}
	if s.Bucket() != bucket {
		t.Fatalf("Bucket() = %q", s.Bucket())
	}
	if err := s.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// Opening an existing bucket is fine, and so are concurrent creators.
	newStore(t, srv.Config(bucket))
	bucket2 := miniotest.BucketName()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := s3.New(testCtx(t), srv.Config(bucket2)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent New: %v", err)
	}
	// Ping reports a bucket that went away.
	if err := raw.RemoveBucket(testCtx(t), bucket); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(testCtx(t)); err == nil {
		t.Fatal("Ping succeeded on a deleted bucket")
	}
}

func TestNewConfigErrors(t *testing.T) {
	srv := miniotest.Shared(t)
	good := srv.Config(miniotest.BucketName())
	for name, mod := range map[string]func(*s3.Config){
		"no endpoint":     func(c *s3.Config) { c.Endpoint = "" },
		"endpoint path":   func(c *s3.Config) { c.Endpoint += "/x" },
		"http with TLS":   func(c *s3.Config) { c.Endpoint = "http://" + c.Endpoint; c.UseTLS = true },
		"no bucket":       func(c *s3.Config) { c.Bucket = "" },
		"bad bucket":      func(c *s3.Config) { c.Bucket = "Upper_Case" },
		"small part":      func(c *s3.Config) { c.PartSize = 1 << 20 },
		"huge part":       func(c *s3.Config) { c.PartSize = 6 << 30 },
		"bad prefix":      func(c *s3.Config) { c.Prefix = "a/../b" },
		"half credential": func(c *s3.Config) { c.SecretKey = "" },
		"wrong secret":    func(c *s3.Config) { c.SecretKey = "not-the-secret" },
	} {
		cfg := good
		mod(&cfg)
		if _, err := s3.New(testCtx(t), cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if !strings.HasPrefix(err.Error(), "archive/s3: ") {
			t.Errorf("%s: error %q lacks the package prefix", name, err)
		}
	}
	// An http:// scheme is accepted.
	cfg := good
	cfg.Endpoint = "http://" + cfg.Endpoint
	newStore(t, cfg)
}

// TestMultipart streams objects larger than one part, with and without a size, and
// checks that they went up as multipart uploads.
func TestMultipart(t *testing.T) {
	srv := miniotest.Shared(t)
	raw := rawClient(t, srv)
	cfg := srv.Config(miniotest.BucketName())
	cfg.PartSize = 5 * mib
	s := newStore(t, cfg)
	data := payload(7, 12*mib+12345)
	want := sha256.Sum256(data)
	for _, tc := range []struct {
		name  string
		r     io.Reader
		size  int64
		parts int
	}{
		{"unknown", onlyReader{bytes.NewReader(data)}, -1, 3},
		{"known", onlyReader{bytes.NewReader(data)}, int64(len(data)), 3},
		{"known-seeker", bytes.NewReader(data), int64(len(data)), 3},
		// Exactly at part boundaries.
		{"one-part-unknown", onlyReader{bytes.NewReader(data[:5*mib])}, -1, 1},
		{"one-part-known", onlyReader{bytes.NewReader(data[:5*mib])}, 5 * mib, 1},
		{"two-parts-unknown", onlyReader{bytes.NewReader(data[:10*mib])}, -1, 2},
		{"two-parts-known", onlyReader{bytes.NewReader(data[:10*mib])}, 10 * mib, 2},
		// Tiny reads.
		{"one-byte-reads", onlyReader{&oneByteReader{bytes.NewReader(data[:5*mib+3])}}, -1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "mp/" + tc.name
			info, err := s.Put(testCtx(t), key, tc.r, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			var wantSum [32]byte
			var wantN int64
			switch tc.name {
			case "unknown", "known", "known-seeker":
				wantSum, wantN = want, int64(len(data))
			case "one-part-unknown", "one-part-known":
				wantSum, wantN = sha256.Sum256(data[:5*mib]), 5*mib
			case "two-parts-unknown", "two-parts-known":
				wantSum, wantN = sha256.Sum256(data[:10*mib]), 10*mib
			case "one-byte-reads":
				wantSum, wantN = sha256.Sum256(data[:5*mib+3]), 5*mib+3
			}
			if info.Size != wantN || info.Key != key {
				t.Fatalf("Put info = %+v, want size %d", info, wantN)
			}
			if sum, n := sumGet(t, s, key); sum != wantSum || n != wantN {
				t.Fatalf("Get: %d bytes, sha256 differs: %v", n, sum != wantSum)
			}
			oi, err := raw.StatObject(testCtx(t), cfg.Bucket, key, minio.StatObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A multipart object's ETag ends in -<parts>; a single PUT's has no dash.
			wantSuffix := fmt.Sprintf("-%d", tc.parts)
			if tc.parts == 1 {
				if strings.Contains(oi.ETag, "-") {
					t.Fatalf("ETag %q: stored as multipart, want a single PUT", oi.ETag)
				}
			} else if !strings.HasSuffix(oi.ETag, wantSuffix) {
				t.Fatalf("ETag %q, want a %d-part upload", oi.ETag, tc.parts)
			}
			if ups := pendingUploads(t, raw, cfg.Bucket, key); len(ups) != 0 {
				t.Fatalf("incomplete uploads left: %v", ups)
			}
		})
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// TestFailedPutLeavesNothing breaks the reader in the first part (single PUT) and in a
// later part (multipart), with and without a size, over a new key and over an existing
// object, and checks that nothing changed and no upload is left behind.
func TestFailedPutLeavesNothing(t *testing.T) {
	srv := miniotest.Shared(t)
	raw := rawClient(t, srv)
	cfg := srv.Config(miniotest.BucketName())
	cfg.PartSize = 5 * mib
	s := newStore(t, cfg)
	data := payload(8, 12*mib)
	old := []byte("the previous object")
	for _, failAt := range []int64{0, 1, 3 * mib, 5 * mib, 7 * mib, 12*mib - 1} {
		for _, size := range []int64{int64(len(data)), -1} {
			for _, overwrite := range []bool{false, true} {
				name := fmt.Sprintf("at%d/size%d/overwrite=%v", failAt, size, overwrite)
				t.Run(name, func(t *testing.T) {
					key := "failed/" + name
					if overwrite {
						mustPut(t, s, key, old)
					}
					_, err := s.Put(testCtx(t), key, &brokenReader{r: bytes.NewReader(data), n: failAt}, size)
					if !errors.Is(err, errBroken) {
						t.Fatalf("Put = %v, want the reader's error", err)
					}
					if !strings.HasPrefix(err.Error(), "archive/s3: put "+key+": ") {
						t.Fatalf("error %q lacks op and key", err)
					}
					if overwrite {
						rc, _, err := s.Get(testCtx(t), key)
						if err != nil {
							t.Fatal(err)
						}
						got, _ := io.ReadAll(rc)
						rc.Close()
						if !bytes.Equal(got, old) {
							t.Fatalf("old object replaced by %d bytes", len(got))
						}
					} else {
						assertAbsent(t, s, key)
					}
					// Aborts run before Put returns while the context is live.
					if ups := pendingUploads(t, raw, cfg.Bucket, key); len(ups) != 0 {
						t.Fatalf("incomplete uploads left: %v", ups)
					}
				})
			}
		}
	}
}

// TestSizeMismatch gives readers shorter and longer than the declared size.
func TestSizeMismatch(t *testing.T) {
	srv := miniotest.Shared(t)
	raw := rawClient(t, srv)
	cfg := srv.Config(miniotest.BucketName())
	cfg.PartSize = 5 * mib
	s := newStore(t, cfg)
	data := payload(9, 11*mib)
	for _, tc := range []struct {
		name      string
		have, say int64
	}{
		{"short-single", 100, 1000},
		{"long-single", 1001, 1000},
		{"long-by-one-at-part", 5*mib + 1, 5 * mib},
		{"empty-declared-but-data", 1, 0},
		{"short-multipart", 7 * mib, 11 * mib},
		{"long-multipart", 11 * mib, 7 * mib},
		{"long-multipart-at-boundary", 10*mib + 1, 10 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Put(testCtx(t), tc.name, onlyReader{bytes.NewReader(data[:tc.have])}, tc.say)
			if err == nil {
				t.Fatalf("Put of %d bytes declared as %d succeeded", tc.have, tc.say)
			}
			assertAbsent(t, s, tc.name)
			if ups := pendingUploads(t, raw, cfg.Bucket, tc.name); len(ups) != 0 {
				t.Fatalf("incomplete uploads left: %v", ups)
			}
		})
	}
}

// gateReader yields n bytes, then calls onBlock once and blocks until ctx ends.
type gateReader struct {
	ctx     context.Context
	r       io.Reader
	n       int64
	onBlock func()
}

func (g *gateReader) Read(p []byte) (int, error) {
	if g.n <= 0 {
		if g.onBlock != nil {
			g.onBlock()
			g.onBlock = nil
		}
		<-g.ctx.Done()
		return 0, g.ctx.Err()
	}
	if int64(len(p)) > g.n {
		p = p[:g.n]
	}
	n, err := g.r.Read(p)
	g.n -= int64(n)
	return n, err
}

// TestCancelDuringPut cancels the context while a multipart upload is under way.
func TestCancelDuringPut(t *testing.T) {
	srv := miniotest.Shared(t)
	raw := rawClient(t, srv)
	cfg := srv.Config(miniotest.BucketName())
	cfg.PartSize = 5 * mib
	s := newStore(t, cfg)
	data := payload(10, 12*mib)
	for _, size := range []int64{int64(len(data)), -1} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			key := fmt.Sprintf("cancel/%d", size)
			ctx, cancel := context.WithCancel(testCtx(t))
			// The first part has been uploaded by the time the reader blocks in the second.
			r := &gateReader{ctx: ctx, r: bytes.NewReader(data), n: 7 * mib}
			r.onBlock = func() {
				if len(pendingUploads(t, raw, cfg.Bucket, key)) != 1 {
					t.Error("no multipart upload under way when the reader blocked")
				}
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			start := time.Now()
			_, err := s.Put(ctx, key, onlyReader{r}, size)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put = %v, want context.Canceled", err)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("Put took %v to notice the cancellation", d)
			}
			assertAbsent(t, s, key)
			waitNoUploads(t, raw, cfg.Bucket, key)
		})
	}
	// Cancelled before anything was sent.
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	if _, err := s.Put(ctx, "cancel/before", bytes.NewReader(data[:10]), 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context = %v", err)
	}
	assertAbsent(t, s, "cancel/before")
}

// slowReader yields r in small pieces, calling hook after each piece.
type slowReader struct {
	r    io.Reader
	read int64
	hook func(read int64)
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 256<<10 {
		p = p[:256<<10]
	}
	n, err := s.r.Read(p)
	s.read += int64(n)
	if s.hook != nil {
		s.hook(s.read)
	}
	return n, err
}

// TestServerStopMidPut stops the server while a multipart upload is under way: Put must
// fail within its deadline rather than hang, leave nothing behind, and work again once
// the server is back.
func TestServerStopMidPut(t *testing.T) {
	srv := miniotest.Start(t)
	cfg := srv.Config(miniotest.BucketName())
	cfg.PartSize = 5 * mib
	s := newStore(t, cfg)
	data := payload(11, 12*mib)
	var once sync.Once
	r := &slowReader{r: bytes.NewReader(data), hook: func(read int64) {
		if read >= 7*mib { // the first part is up; the second is being read
			once.Do(srv.Stop)
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	_, err := s.Put(ctx, "stopped/obj", onlyReader{r}, -1)
	if err == nil {
		t.Fatal("Put succeeded with the server stopped")
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("Put took %v to fail", d)
	}
	t.Logf("Put with the server gone after %v: %v", time.Since(start).Round(time.Millisecond), err)

	// Everything fails, promptly, while the server is down.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := s.Ping(ctx2); err == nil {
		t.Fatal("Ping succeeded with the server stopped")
	}
	if _, err := s.Put(ctx2, "stopped/small", bytes.NewReader([]byte("x")), 1); err == nil {
		t.Fatal("small Put succeeded with the server stopped")
	}

	srv.Restart(t)
	if err := s.Ping(testCtx(t)); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
	assertAbsent(t, s, "stopped/obj")
	assertAbsent(t, s, "stopped/small")
	info, err := s.Put(testCtx(t), "stopped/obj", onlyReader{bytes.NewReader(data)}, -1)
	if err != nil {
		t.Fatalf("Put after restart: %v", err)
	}
	if sum, n := sumGet(t, s, "stopped/obj"); n != info.Size || sum != sha256.Sum256(data) {
		t.Fatal("object put after restart differs")
	}
	// The abort of the failed upload could not reach the server: its parts stay,
	// invisible, for a lifecycle rule to remove.
	if ups := pendingUploads(t, rawClient(t, srv), cfg.Bucket, "stopped/obj"); len(ups) != 1 {
		t.Logf("incomplete uploads of the failed put: %v", ups)
	}
}

// TestModTimes checks that Put, Get, Stat and List agree on an object's time.
func TestModTimes(t *testing.T) {
	srv := miniotest.Shared(t)
	cfg := srv.Config(miniotest.BucketName())
	cfg.PartSize = 5 * mib
	s := newStore(t, cfg)
	before := time.Now().Add(-2 * time.Second)
	for _, n := range []int{10, 6 * mib} {
		key := fmt.Sprintf("t/%d", n)
		info := mustPut(t, s, key, payload(12, n))
		st, err := s.Stat(testCtx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		rc, gi, err := s.Get(testCtx(t), key)
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
		var li archive.ObjectInfo
		for i, err := range s.List(testCtx(t), key) {
			if err != nil {
				t.Fatal(err)
			}
			li = i
		}
		for what, got := range map[string]archive.ObjectInfo{"Stat": st, "Get": gi, "List": li} {
			if got.Key != key || got.Size != int64(n) || !got.ModTime.Equal(info.ModTime) {
				t.Errorf("%s = %+v, Put = %+v", what, got, info)
			}
		}
		if info.ModTime.Before(before) || info.ModTime.After(time.Now().Add(2*time.Second)) {
			t.Errorf("ModTime %v is not about now", info.ModTime)
		}
	}
}

// TestEmptyObjectRanges covers ranges of an empty object beyond the suite's.
func TestEmptyObjectRanges(t *testing.T) {
	srv := miniotest.Shared(t)
	s := srv.NewStore(t)
	mustPut(t, s, "e", nil)
	for _, c := range []struct{ off, length int64 }{{0, -1}, {0, 0}, {0, 10}} {
		rc, err := s.GetRange(testCtx(t), "e", c.off, c.length)
		if err != nil {
			t.Fatalf("GetRange(%d,%d): %v", c.off, c.length, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || len(b) != 0 {
			t.Fatalf("GetRange(%d,%d) = %d bytes, %v", c.off, c.length, len(b), err)
		}
	}
	for _, c := range []struct{ off, length int64 }{{1, -1}, {1, 0}, {1, 5}} {
		if _, err := s.GetRange(testCtx(t), "e", c.off, c.length); !errors.Is(err, archive.ErrInvalidRange) {
			t.Fatalf("GetRange(%d,%d) = %v, want ErrInvalidRange", c.off, c.length, err)
		}
	}
	// Ranges of a missing key are not found whatever the range.
	for _, c := range []struct{ off, length int64 }{{0, -1}, {0, 0}, {5, 1}} {
		if _, err := s.GetRange(testCtx(t), "missing", c.off, c.length); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("GetRange(missing, %d,%d) = %v, want ErrNotFound", c.off, c.length, err)
		}
	}
	// A huge length does not overflow.
	mustPut(t, s, "x", []byte("0123456789"))
	rc, err := s.GetRange(testCtx(t), "x", 3, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "3456789" {
		t.Fatalf("GetRange(3, 1<<62) = %q", b)
	}
}

// TestErrors checks error wrapping and the not-found mapping.
func TestErrors(t *testing.T) {
	srv := miniotest.Shared(t)
	s := srv.NewStore(t)
	_, _, err := s.Get(testCtx(t), "no/such")
	if !errors.Is(err, archive.ErrNotFound) || !strings.HasPrefix(err.Error(), "archive/s3: get no/such: ") {
		t.Fatalf("Get = %v", err)
	}
	if err := s.Delete(testCtx(t), "no/such"); !errors.Is(err, archive.ErrNotFound) || !strings.HasPrefix(err.Error(), "archive/s3: delete no/such: ") {
		t.Fatalf("Delete = %v", err)
	}
	for _, k := range []string{"", "/a", "a//b", "../a"} {
		if _, _, err := s.Get(testCtx(t), k); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v", k, err)
		}
		if _, err := s.GetRange(testCtx(t), k, 0, 1); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("GetRange(%q) = %v", k, err)
		}
		if _, err := s.Stat(testCtx(t), k); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v", k, err)
		}
		if err := s.Delete(testCtx(t), k); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v", k, err)
		}
	}
	if _, err := s.Put(testCtx(t), "k", bytes.NewReader(nil), -2); err == nil {
		t.Error("Put with size -2 succeeded")
	}
	// Keys S3 cannot store are invalid keys.
	for _, k := range []string{"bad\xffutf8", strings.Repeat("k", 1025)} {
		if _, err := s.Put(testCtx(t), k, bytes.NewReader([]byte("x")), 1); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Put(%.20q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

// TestOddKeys round-trips keys with characters that need escaping in URLs.
func TestOddKeys(t *testing.T) {
	srv := miniotest.Shared(t)
	s := srv.NewStore(t)
	keys := []string{"a b/c+d", "é/ü/日本", "q?x=1&y#frag", "pct%20/semi;colon", "tilde~/star*/quote'\"", "dots/.hidden/..x"}
	for i, k := range keys {
		data := payload(uint64(20+i), 100+i)
		mustPut(t, s, k, data)
		rc, info, err := s.Get(testCtx(t), k)
		if err != nil {
			t.Fatalf("Get(%q): %v", k, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data) || info.Key != k {
			t.Fatalf("Get(%q) = %d bytes, info %+v", k, len(got), info)
		}
	}
	var listed []string
	for info, err := range s.List(testCtx(t), "") {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, info.Key)
	}
	want := append([]string(nil), keys...)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("List = %q, want %q", listed, want)
	}
	for _, k := range keys {
		if err := s.Delete(testCtx(t), k); err != nil {
			t.Fatal(err)
		}
	}
}

// TestListForeignObjects checks that List skips objects that are not valid keys and
// objects outside the store's prefix, and ends with an error when its context does.
func TestListForeignObjects(t *testing.T) {
	srv := miniotest.Shared(t)
	raw := rawClient(t, srv)
	cfg := srv.Config(miniotest.BucketName())
	cfg.Prefix = "lumen"
	s := newStore(t, cfg)
	for _, name := range []string{"lumen/folder/", "lumen2/x", "other/y", "lumen/a//b"} {
		if _, err := raw.PutObject(testCtx(t), cfg.Bucket, name, bytes.NewReader(nil), 0, minio.PutObjectOptions{}); err != nil {
			t.Logf("raw put %q: %v (skipped)", name, err)
		}
	}
	mustPut(t, s, "folder/obj", []byte("1"))
	mustPut(t, s, "z", []byte("2"))
	var keys []string
	for info, err := range s.List(testCtx(t), "") {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	if fmt.Sprint(keys) != "[folder/obj z]" {
		t.Fatalf("List = %v", keys)
	}
	// The object is stored under the prefix.
	if _, err := raw.StatObject(testCtx(t), cfg.Bucket, "lumen/folder/obj", minio.StatObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	var lerr error
	for _, err := range s.List(ctx, "") {
		lerr = err
	}
	if !errors.Is(lerr, context.Canceled) {
		t.Fatalf("List with a cancelled context ended with %v", lerr)
	}
}

// TestListMany lists more objects than one S3 listing page holds.
func TestListMany(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	srv := miniotest.Shared(t)
	s := srv.NewStore(t)
	const n = 1100
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			mustPut(t, s, fmt.Sprintf("many/%05d", i), []byte{byte(i)})
		})
	}
	wg.Wait()
	i := 0
	for info, err := range s.List(testCtx(t), "many/") {
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("many/%05d", i); info.Key != want || info.Size != 1 {
			t.Fatalf("entry %d = %+v, want %s", i, info, want)
		}
		i++
	}
	if i != n {
		t.Fatalf("listed %d objects, want %d", i, n)
	}
}

// BenchmarkPut measures serial puts of 512 KB objects with a known size.
func BenchmarkPut(b *testing.B) {
	srv := miniotest.Shared(b)
	s := srv.NewStore(b)
	data := payload(13, 512<<10)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Put(ctx, fmt.Sprintf("bench/%d", i%64), bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestEnvCredentials opens a store with credentials taken from the environment.
func TestEnvCredentials(t *testing.T) {
	srv := miniotest.Shared(t)
	cfg := srv.Config(miniotest.BucketName())
	t.Setenv("AWS_ACCESS_KEY_ID", cfg.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", cfg.SecretKey)
	cfg.AccessKey, cfg.SecretKey = "", ""
	s := newStore(t, cfg)
	mustPut(t, s, "k", []byte("v"))
}
