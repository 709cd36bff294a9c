package dicomweb_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/lumenpacs/lumen/testdata/gen"
)

// TestSTOWAcceptedWithWarning: a part whose SOP Instance UID is stored with other
// content is kept in quarantine, and a part with zero padding after its data set is
// stored as received: both are listed as stored, each with a Warning header, and the
// answer is 202 Accepted. The same content again is a plain 200.
func TestSTOWAcceptedWithWarning(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend, nil)
			ct, err := gen.CTSeries(gen.Options{Seed: 61}, 2, 16, 16)
			if err != nil {
				t.Fatal(err)
			}
			if code, _, _ := stowParts(t, e, ct[0].Data); code != http.StatusOK {
				t.Fatalf("first: %d", code)
			}
			if code, seen, _ := stowParts(t, e, ct[0].Data); code != http.StatusOK || strings.Contains(seen, "299 lumen") {
				t.Fatalf("the same again: %d %s", code, seen)
			}
			other := bytes.Clone(ct[0].Data)
			other[len(other)-1] ^= 1
			padded := append(bytes.Clone(ct[1].Data), make([]byte, 10)...)
			code, seen, out := stowParts(t, e, other, padded)
			if code != http.StatusAccepted || seqLen(out, "00081199") != 2 || seqLen(out, "00081198") != 0 {
				t.Fatalf("different content and padding: %d %s", code, seen)
			}
			if !strings.Contains(seen, "part 1: the SOP Instance UID is stored with other content") || !strings.Contains(seen, "quarantine") ||
				!strings.Contains(seen, "part 2: 10 bytes of zero padding") {
				t.Fatalf("warnings: %s", seen)
			}
		})
	}
}
