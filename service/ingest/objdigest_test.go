package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/service/ingest"
)

// TestObjectDigest pins the object digest: BLAKE3-256 with the "b3:" prefix (the
// algorithm's published values for "" and "abc"), computed over the stored bytes, and
// records from before (a SHA-256 without prefix) still answering a copy sent again.
func TestObjectDigest(t *testing.T) {
	for in, want := range map[string]string{
		"":    "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
		"abc": "b3:6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85",
	} {
		if got, n, err := ingest.Hash(strings.NewReader(in), ""); err != nil || got != want || n != int64(len(in)) {
			t.Errorf("Hash(%q) = %s, %d, %v; want %s", in, got, n, err, want)
		}
	}

	e := newEnv(t)
	o := corpus(t)[0]
	res, err := ingestBytes(e, o.Data)
	if err != nil {
		t.Fatal(err)
	}
	stored := e.stored(t, res.BlobKey)
	want, _, _ := ingest.Hash(bytes.NewReader(stored), "")
	inst, err := e.idx.Instance(context.Background(), o.SOPInstanceUID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(want, "b3:") || res.Digest != want || inst.Digest != want {
		t.Fatalf("digest of the stored object: result %s, index %s, want %s", res.Digest, inst.Digest, want)
	}

	// An archive written before holds the SHA-256 of the bytes.
	sum := sha256.Sum256(stored)
	legacy := hex.EncodeToString(sum[:])
	if got, _, err := ingest.Hash(bytes.NewReader(stored), legacy); err != nil || got != legacy {
		t.Fatalf("Hash like a SHA-256 record = %s, %v; want %s", got, err, legacy)
	}
	inst.Digest, inst.ContentDigest = legacy, ""
	if _, err := e.idx.Replace(context.Background(), inst); err != nil {
		t.Fatal(err)
	}
	before := e.blobs(t)
	res, err = ingestBytes(e, o.Data)
	if err != nil || res.Outcome != ingest.AlreadyStored || res.Digest != legacy {
		t.Fatalf("same bytes against a SHA-256 record: %+v, %v", res, err)
	}
	if after := e.blobs(t); len(after) != len(before) {
		t.Fatalf("blobs %d -> %d", len(before), len(after))
	}
	// Other bytes under the same SOP Instance UID are still told apart.
	other := bytes.Clone(o.Data)
	other[len(other)-1] ^= 0xff
	if res, err = ingestBytes(e, other); err != nil || res.Outcome != ingest.Quarantined {
		t.Fatalf("other bytes against a SHA-256 record: %+v, %v", res, err)
	}
}
