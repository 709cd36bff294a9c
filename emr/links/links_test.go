package links

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func key(id string) Key { return Key{ID: id, Secret: bytes.Repeat([]byte(id[len(id)-1:]), 32)} }

func TestSignVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	old := &Signer{Keys: []Key{key("k1")}, Active: "k1", Now: clock}
	if err := old.Check(); err != nil {
		t.Fatal(err)
	}
	study, _, err := old.Sign(ScopeStudy, "1.2.3", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := old.Verify(study)
	if err != nil || c.Scope != ScopeStudy || c.Subject != "1.2.3" || c.KeyID != "k1" || c.ID == "" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if !c.AllowsStudy("1.2.3", "", "") || c.AllowsStudy("1.2.4", "", "") || c.AllowsPatient("P1", "") {
		t.Fatal("study scope")
	}
	pat, _, _ := old.Sign(ScopePatient, PatientDigest("P:1", "HOSP"), time.Hour)
	pc, err := old.Verify(pat)
	if err != nil || !pc.AllowsPatient("P:1", "HOSP") || pc.AllowsPatient("P:1", "") || pc.AllowsPatient("P:2", "HOSP") ||
		!pc.AllowsStudy("9.9", "P:1", "HOSP") || pc.AllowsStudy("9.9", "P:1", "OTHER") {
		t.Fatalf("patient scope: %+v %v", pc, err)
	}
	// The ID has a character base64url never writes, so a random token cannot contain it.
	if strings.Contains(pat, "P:1") || strings.Contains(string(mustDecode(t, strings.Split(pat, ".")[1])), "P:1") {
		t.Fatal("the patient ID is readable in the token")
	}

	// Rotation: k2 signs new links, k1's links stay valid until they expire.
	rotated := &Signer{Keys: []Key{key("k1"), key("k2")}, Active: "k2", Now: clock}
	if _, err := rotated.Verify(study); err != nil {
		t.Fatalf("old link after rotation: %v", err)
	}
	fresh, _, _ := rotated.Sign(ScopeStudy, "1.2.3", time.Hour)
	if c, err := rotated.Verify(fresh); err != nil || c.KeyID != "k2" {
		t.Fatalf("new link: %+v %v", c, err)
	}
	// k1 retired: its links are refused as of an unknown key.
	retired := &Signer{Keys: []Key{key("k2")}, Active: "k2", Now: clock}
	if _, err := retired.Verify(study); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("retired key: %v", err)
	}

	// Expired.
	now = now.Add(time.Hour)
	if c, err := old.Verify(study); !errors.Is(err, ErrExpired) || c == nil {
		t.Fatalf("expired: %v", err)
	}
	now = now.Add(-time.Hour)

	// Tampering: claims changed, signature changed, key ID swapped, garbage.
	p := strings.Split(study, ".")
	other := base64.RawURLEncoding.EncodeToString([]byte(`{"scope":"study","sub":"1.2.4","exp":1900000000,"jti":"x"}`))
	sig := []byte(p[2])
	sig[3] ^= 1
	swapped, _, _ := (&Signer{Keys: []Key{key("k2"), {ID: "k1", Secret: key("k2").Secret}}, Active: "k1"}).Sign(ScopeStudy, "1.2.3", time.Hour)
	for name, tok := range map[string]string{
		"claims":    p[0] + "." + other + "." + p[2],
		"signature": p[0] + "." + p[1] + "." + string(sig),
		"key":       swapped, // signed with another secret under the ID k1
		"garbage":   "not-a-token",
		"empty":     "",
		"four":      study + ".x",
	} {
		if _, err := old.Verify(tok); err == nil || errors.Is(err, ErrExpired) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}

func TestCheck(t *testing.T) {
	for name, s := range map[string]*Signer{
		"none":      {},
		"short":     {Keys: []Key{{ID: "a", Secret: []byte("short")}}, Active: "a"},
		"inactive":  {Keys: []Key{key("a1")}, Active: "b"},
		"duplicate": {Keys: []Key{key("a1"), key("a1")}, Active: "a1"},
		"dot":       {Keys: []Key{{ID: "a.b", Secret: key("a").Secret}}, Active: "a.b"},
	} {
		if err := s.Check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustDecode(t *testing.T, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
