package archivetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lumenpacs/lumen/archive"
)

// Run runs the whole contract suite (with the archive.Creator cases when the store
// implements it). newStore must return a fresh, empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) archive.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s archive.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"UnknownSize", testUnknownSize},
		{"Empty", testEmpty},
		{"Overwrite", testOverwrite},
		{"Ranges", testRanges},
		{"NotFound", testNotFound},
		{"InvalidKeys", testInvalidKeys},
		{"FailedPutLeavesNothing", testFailedPut},
		{"FailedOverwriteKeepsOld", testFailedOverwrite},
		{"CancelledPut", testCancelledPut},
		{"ConcurrentPuts", testConcurrentPuts},
		{"List", testList},
		{"Delete", testDelete},
		{"LargeStream", testLargeStream},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
	runCreator(t, newStore)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustPut(t *testing.T, s archive.Store, key string, data []byte) archive.ObjectInfo {
	t.Helper()
	info, err := s.Put(ctx(t), key, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	return info
}

func mustGet(t *testing.T, s archive.Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q) read: %v", key, err)
	}
	return b
}

func testRoundTrip(t *testing.T, s archive.Store) {
	data := payload(1, 100_003)
	info := mustPut(t, s, "a/b/c.dcm", data)
	if info.Key != "a/b/c.dcm" || info.Size != int64(len(data)) {
		t.Fatalf("Put info = %+v", info)
	}
	if got := mustGet(t, s, "a/b/c.dcm"); !bytes.Equal(got, data) {
		t.Fatalf("Get returned %d bytes, differing from the %d put", len(got), len(data))
	}
	st, err := s.Stat(ctx(t), "a/b/c.dcm")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(data)) || st.Key != "a/b/c.dcm" {
		t.Fatalf("Stat = %+v", st)
	}
	if st.ModTime.IsZero() || time.Since(st.ModTime) > time.Hour || time.Until(st.ModTime) > time.Hour {
		t.Fatalf("Stat ModTime = %v, want about now", st.ModTime)
	}
	_, ginfo, err := s.Get(ctx(t), "a/b/c.dcm")
	if err != nil {
		t.Fatal(err)
	}
	if ginfo.Size != int64(len(data)) {
		t.Fatalf("Get info size = %d", ginfo.Size)
	}
}

// onlyReader hides every interface but io.Reader, so backends cannot peek at the size.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testUnknownSize(t *testing.T, s archive.Store) {
	data := payload(2, 300_001)
	info, err := s.Put(ctx(t), "unknown/size", onlyReader{bytes.NewReader(data)}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) {
		t.Fatalf("size = %d, want %d", info.Size, len(data))
	}
	if got := mustGet(t, s, "unknown/size"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

func testEmpty(t *testing.T, s archive.Store) {
	mustPut(t, s, "empty", nil)
	if got := mustGet(t, s, "empty"); len(got) != 0 {
		t.Fatalf("got %d bytes", len(got))
	}
	rc, err := s.GetRange(ctx(t), "empty", 0, -1)
	if err != nil {
		t.Fatalf("GetRange(empty, 0, -1): %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if len(b) != 0 {
		t.Fatalf("got %d bytes", len(b))
	}
}

func testOverwrite(t *testing.T, s archive.Store) {
	mustPut(t, s, "k", []byte("first version"))
	mustPut(t, s, "k", []byte("second"))
	if got := string(mustGet(t, s, "k")); got != "second" {
		t.Fatalf("got %q", got)
	}
}

func testRanges(t *testing.T, s archive.Store) {
	data := payload(3, 10_000)
	mustPut(t, s, "r", data)
	n := int64(len(data))
	cases := []struct {
		off, length int64
		want        []byte
	}{
		{0, 1, data[:1]},
		{0, n, data},
		{0, -1, data},
		{n - 1, 1, data[n-1:]},
		{n - 1, -1, data[n-1:]},
		{1234, 1000, data[1234:2234]},
		{5000, -1, data[5000:]},
		{n - 10, 100, data[n-10:]}, // shortened at the end
		{17, 0, nil},
	}
	for _, c := range cases {
		rc, err := s.GetRange(ctx(t), "r", c.off, c.length)
		if err != nil {
			t.Fatalf("GetRange(%d,%d): %v", c.off, c.length, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("GetRange(%d,%d) read: %v", c.off, c.length, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Fatalf("GetRange(%d,%d) = %d bytes, want %d", c.off, c.length, len(got), len(c.want))
		}
	}
	for _, c := range []struct{ off, length int64 }{{n, 1}, {n + 100, -1}, {-1, 5}, {0, -2}} {
		rc, err := s.GetRange(ctx(t), "r", c.off, c.length)
		if err == nil {
			rc.Close()
			t.Fatalf("GetRange(%d,%d) succeeded, want ErrInvalidRange", c.off, c.length)
		}
		if !errors.Is(err, archive.ErrInvalidRange) {
			t.Fatalf("GetRange(%d,%d) = %v, want ErrInvalidRange", c.off, c.length, err)
		}
	}
}

func testNotFound(t *testing.T, s archive.Store) {
	c := ctx(t)
	if _, _, err := s.Get(c, "no/such"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Get: %v, want ErrNotFound", err)
	}
	if _, err := s.GetRange(c, "no/such", 0, 10); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("GetRange: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(c, "no/such"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat: %v, want ErrNotFound", err)
	}
	if err := s.Delete(c, "no/such"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Delete: %v, want ErrNotFound", err)
	}
	// A prefix of an existing key is not itself an object.
	mustPut(t, s, "dir/obj", []byte("x"))
	if _, err := s.Stat(c, "dir"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat(dir): %v, want ErrNotFound", err)
	}
}

func testInvalidKeys(t *testing.T, s archive.Store) {
	for _, k := range []string{"", "/abs", "a//b", "a/../b", "..", "a/./b", "trailing/"} {
		if _, err := s.Put(ctx(t), k, bytes.NewReader([]byte("x")), 1); !errors.Is(err, archive.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

var errBroken = errors.New("archivetest: reader broke")

// brokenReader yields n bytes and then fails.
type brokenReader struct {
	r io.Reader
	n int
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, errBroken
	}
	if len(p) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= n
	return n, err
}

func assertAbsent(t *testing.T, s archive.Store, key string) {
	t.Helper()
	if _, err := s.Stat(ctx(t), key); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat(%q) after failed put = %v, want ErrNotFound", key, err)
	}
	for info, err := range s.List(ctx(t), "") {
		if err != nil {
			t.Fatal(err)
		}
		if info.Key == key {
			t.Fatalf("List shows %q after a failed put", key)
		}
	}
}

func testFailedPut(t *testing.T, s archive.Store) {
	data := payload(4, 200_000)
	for _, size := range []int64{int64(len(data)), -1} {
		key := fmt.Sprintf("failed/%d", size)
		_, err := s.Put(ctx(t), key, &brokenReader{r: bytes.NewReader(data), n: 50_000}, size)
		if err == nil {
			t.Fatalf("Put with failing reader (size %d) succeeded", size)
		}
		assertAbsent(t, s, key)
	}
	// A reader shorter than the declared size is a failure too.
	_, err := s.Put(ctx(t), "short", bytes.NewReader(data[:100]), 1000)
	if err == nil {
		t.Fatal("Put with a short reader succeeded")
	}
	assertAbsent(t, s, "short")
	// And so is one longer than declared: the extra bytes must not be dropped silently.
	_, err = s.Put(ctx(t), "long", bytes.NewReader(data[:1000]), 100)
	if err == nil {
		t.Fatal("Put with a reader longer than its size succeeded")
	}
	assertAbsent(t, s, "long")
}

func testFailedOverwrite(t *testing.T, s archive.Store) {
	mustPut(t, s, "keep", []byte("original"))
	_, err := s.Put(ctx(t), "keep", &brokenReader{r: bytes.NewReader(payload(5, 1000)), n: 10}, -1)
	if err == nil {
		t.Fatal("failing put succeeded")
	}
	if got := string(mustGet(t, s, "keep")); got != "original" {
		t.Fatalf("after failed overwrite got %q", got)
	}
}

// blockingReader yields some bytes and then blocks until its context ends.
type blockingReader struct {
	ctx  context.Context
	sent bool
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if !b.sent {
		b.sent = true
		n := copy(p, bytes.Repeat([]byte{'z'}, 1024))
		return n, nil
	}
	<-b.ctx.Done()
	return 0, b.ctx.Err()
}

func testCancelledPut(t *testing.T, s archive.Store) {
	c, cancel := context.WithCancel(ctx(t))
	// Cancelled before starting.
	cancel()
	if _, err := s.Put(c, "cancelled/before", bytes.NewReader([]byte("x")), 1); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	assertAbsent(t, s, "cancelled/before")
	// Cancelled while streaming.
	c2, cancel2 := context.WithCancel(ctx(t))
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(c2, "cancelled/during", &blockingReader{ctx: c2}, -1)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel2()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Put cancelled mid-stream succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Put did not return after cancellation")
	}
	assertAbsent(t, s, "cancelled/during")
}

func testConcurrentPuts(t *testing.T, s archive.Store) {
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*2)
	// Distinct keys.
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := payload(uint64(100+i), 50_000+i)
			if _, err := s.Put(ctx(t), fmt.Sprintf("conc/%02d", i), bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- err
			}
		}()
	}
	// The same key from all writers: the survivor is one whole object.
	candidates := map[[32]byte]bool{}
	var mu sync.Mutex
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := payload(uint64(200+i), 80_000)
			mu.Lock()
			candidates[sha256.Sum256(data)] = true
			mu.Unlock()
			if _, err := s.Put(ctx(t), "conc/same", bytes.NewReader(data), -1); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range writers {
		data := payload(uint64(100+i), 50_000+i)
		if !bytes.Equal(mustGet(t, s, fmt.Sprintf("conc/%02d", i)), data) {
			t.Fatalf("conc/%02d differs", i)
		}
	}
	if !candidates[sha256.Sum256(mustGet(t, s, "conc/same"))] {
		t.Fatal("concurrent puts to one key produced a mixed object")
	}
}

func testList(t *testing.T, s archive.Store) {
	keys := []string{"l/b/2", "l/a/1", "l/a/10", "l/c", "m/x", "la"}
	for i, k := range keys {
		mustPut(t, s, k, payload(uint64(i), i+1))
	}
	list := func(prefix string) []string {
		var out []string
		for info, err := range s.List(ctx(t), prefix) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, info.Key)
		}
		return out
	}
	want := []string{"l/a/1", "l/a/10", "l/b/2", "l/c"}
	if got := list("l/"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List(l/) = %v, want %v", got, want)
	}
	all := append([]string(nil), keys...)
	sort.Strings(all)
	if got := list(""); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("List() = %v, want %v", got, all)
	}
	if got := list("l/a/1"); fmt.Sprint(got) != fmt.Sprint([]string{"l/a/1", "l/a/10"}) {
		t.Fatalf("List(l/a/1) = %v", got)
	}
	if got := list("nothing/"); len(got) != 0 {
		t.Fatalf("List(nothing/) = %v", got)
	}
	// Sizes are reported.
	for info, err := range s.List(ctx(t), "l/c") {
		if err != nil || info.Size != 4 {
			t.Fatalf("List info = %+v, %v", info, err)
		}
	}
	// Stopping early is allowed.
	for range s.List(ctx(t), "") {
		break
	}
}

func testDelete(t *testing.T, s archive.Store) {
	mustPut(t, s, "d/1", []byte("x"))
	if err := s.Delete(ctx(t), "d/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx(t), "d/1"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Stat after delete = %v", err)
	}
	if err := s.Delete(ctx(t), "d/1"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("second Delete = %v", err)
	}
}

// patternReader streams n deterministic bytes without holding them.
type patternReader struct {
	n, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n-p.off {
		b = b[:p.n-p.off]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) * 2654435761 >> 13)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func testLargeStream(t *testing.T, s archive.Store) {
	const n = 40 << 20 // 40 MiB, beyond one S3 part and any small buffer
	want := sha256.New()
	io.Copy(want, &patternReader{n: n})
	info, err := s.Put(ctx(t), "large/obj", onlyReader{&patternReader{n: n}}, -1)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != n {
		t.Fatalf("size = %d", info.Size)
	}
	rc, _, err := s.Get(ctx(t), "large/obj")
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	if _, err := io.Copy(got, rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("large object differs")
	}
	// A range deep inside.
	rc, err = s.GetRange(ctx(t), "large/obj", n-5000, 4000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	ref := &patternReader{n: n, off: n - 5000}
	wantB := make([]byte, 4000)
	io.ReadFull(ref, wantB)
	if !bytes.Equal(b, wantB) {
		t.Fatal("range of large object differs")
	}
}

func testPing(t *testing.T, s archive.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatal(err)
	}
}
