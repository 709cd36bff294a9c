package links

import (
	"strings"
	"testing"
)

// TestParseKeys: key entries of emr.link_keys, standard or URL base64, the active key
// defaulting to the first, and each malformed entry refused with its reason.
func TestParseKeys(t *testing.T) {
	secret := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==" // 30 bytes
	urlSecret := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"
	if s, err := ParseKeys("", nil); s != nil || err != nil {
		t.Fatalf("no entries = %v, %v; want nil, nil (links off)", s, err)
	}
	s, err := ParseKeys("", []string{"k1:" + secret, "k2:" + urlSecret})
	if err != nil || s.Active != "k1" || len(s.Keys) != 2 || string(s.Keys[1].Secret) != string(s.Keys[0].Secret) {
		t.Fatalf("two keys = %+v, %v", s, err)
	}
	if s, err := ParseKeys("k2", []string{"k1:" + secret, "k2:" + secret}); err != nil || s.Active != "k2" {
		t.Fatalf("active k2 = %+v, %v", s, err)
	}
	for _, c := range []struct {
		active  string
		entries []string
		want    string
	}{
		{"", []string{"k1" + secret}, "without a colon"},
		{"", []string{"k1:%%%"}, "k1: the secret is not base64"},
		{"k9", []string{"k1:" + secret}, "k9"},
	} {
		if _, err := ParseKeys(c.active, c.entries); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseKeys(%q, %q) = %v, want an error with %q", c.active, c.entries, err, c.want)
		}
	}
}
