package links

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Scope is what a link grants access to.
type Scope string

// The scopes of a link.
const (
	ScopeStudy   Scope = "study"   // one study, by Study Instance UID
	ScopePatient Scope = "patient" // every study of one patient
)

// Errors of Verify. ErrExpired is the only one a person should be told about plainly
// ("link expired"); the others mean the token was not issued by this archive as it is.
var (
	ErrMalformed    = errors.New("links: malformed token")
	ErrUnknownKey   = errors.New("links: unknown key ID")
	ErrBadSignature = errors.New("links: bad signature")
	ErrExpired      = errors.New("links: link expired")
	ErrOutOfScope   = errors.New("links: outside the link's scope")
)

// Claims are what a token says.
type Claims struct {
	Scope Scope `json:"scope"`
	// Subject is the Study Instance UID (scope study) or PatientDigest of the patient
	// (scope patient).
	Subject string `json:"sub"`
	// Expires is the Unix time after which the link is refused.
	Expires int64 `json:"exp"`
	// ID is a random identifier of the token, for the audit log.
	ID string `json:"jti"`
	// KeyID is the key the token was signed with (not part of the JSON).
	KeyID string `json:"-"`
}

// PatientDigest is the subject of a patient-scope link: a digest of the pair that
// identifies the patient, so that the token carries no patient identifier.
func PatientDigest(patientID, issuer string) string {
	h := sha256.Sum256([]byte("lumen-patient\x00" + patientID + "\x00" + issuer))
	return base64.RawURLEncoding.EncodeToString(h[:18])
}

// AllowsStudy reports whether the claims cover a study of the given patient.
func (c *Claims) AllowsStudy(studyUID, patientID, issuer string) bool {
	switch c.Scope {
	case ScopeStudy:
		return c.Subject == studyUID
	case ScopePatient:
		return hmac.Equal([]byte(c.Subject), []byte(PatientDigest(patientID, issuer)))
	}
	return false
}

// AllowsPatient reports whether the claims cover the whole patient (patient scope).
func (c *Claims) AllowsPatient(patientID, issuer string) bool {
	return c.Scope == ScopePatient && hmac.Equal([]byte(c.Subject), []byte(PatientDigest(patientID, issuer)))
}

// Key is one signing key.
type Key struct {
	ID     string
	Secret []byte // at least 32 bytes
}

// Signer signs and verifies tokens. Its zero value has no keys and refuses everything.
type Signer struct {
	// Keys are every key whose tokens are accepted.
	Keys []Key
	// Active is the ID of the key new tokens are signed with.
	Active string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// MinSecret is the shortest secret accepted.
const MinSecret = 32

// Check reports a configuration that cannot work: no keys, a short or duplicate key, or
// an active key that is not among the keys.
func (s *Signer) Check() error {
	if len(s.Keys) == 0 {
		return errors.New("links: no keys")
	}
	seen := map[string]bool{}
	for _, k := range s.Keys {
		switch {
		case k.ID == "" || strings.ContainsAny(k.ID, ".\x00"):
			return fmt.Errorf("links: key ID %q is empty or contains a dot", k.ID)
		case len(k.Secret) < MinSecret:
			return fmt.Errorf("links: key %q has %d bytes of secret, at least %d are needed", k.ID, len(k.Secret), MinSecret)
		case seen[k.ID]:
			return fmt.Errorf("links: key ID %q twice", k.ID)
		}
		seen[k.ID] = true
	}
	if !seen[s.Active] {
		return fmt.Errorf("links: the active key %q is not among the keys", s.Active)
	}
	return nil
}

func (s *Signer) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Signer) key(id string) []byte {
	for _, k := range s.Keys {
		if k.ID == id {
			return k.Secret
		}
	}
	return nil
}

func mac(secret []byte, signed string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

// Sign returns a token for scope and subject, valid for ttl, signed with the active key.
// The claims returned carry the token's ID and expiry.
func (s *Signer) Sign(scope Scope, subject string, ttl time.Duration) (string, *Claims, error) {
	secret := s.key(s.Active)
	if secret == nil {
		return "", nil, fmt.Errorf("%w: %q (active)", ErrUnknownKey, s.Active)
	}
	if scope != ScopeStudy && scope != ScopePatient {
		return "", nil, fmt.Errorf("links: unknown scope %q", scope)
	}
	if subject == "" || ttl <= 0 {
		return "", nil, errors.New("links: a link needs a subject and a positive lifetime")
	}
	var id [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", nil, err
	}
	c := &Claims{Scope: scope, Subject: subject, Expires: s.now().Add(ttl).Unix(), ID: base64.RawURLEncoding.EncodeToString(id[:]), KeyID: s.Active}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", nil, err
	}
	signed := base64.RawURLEncoding.EncodeToString([]byte(s.Active)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac(secret, signed)), c, nil
}

// Verify checks a token's key, signature and expiry and returns its claims. The
// signature is checked before anything in the claims is believed.
func (s *Signer) Verify(token string) (*Claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(token) > 1024 {
		return nil, ErrMalformed
	}
	kid, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil, ErrMalformed
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, ErrMalformed
	}
	secret := s.key(string(kid))
	if secret == nil {
		return nil, ErrUnknownKey
	}
	if !hmac.Equal(sig, mac(secret, parts[0]+"."+parts[1])) {
		return nil, ErrBadSignature
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, ErrMalformed
	}
	var c Claims
	if err := json.Unmarshal(payload, &c); err != nil || (c.Scope != ScopeStudy && c.Scope != ScopePatient) || c.Subject == "" {
		return nil, ErrMalformed
	}
	c.KeyID = string(kid)
	if s.now().Unix() >= c.Expires {
		return &c, ErrExpired
	}
	return &c, nil
}

// ParseKeys builds a signer from key entries "id:secret" (the secret in standard or URL
// base64), with active the ID of the signing key ("": the first). It returns nil, nil
// when there are no entries: signed links are off.
func ParseKeys(active string, entries []string) (*Signer, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	s := &Signer{Active: active}
	for _, kv := range entries {
		id, secret, ok := strings.Cut(kv, ":")
		if !ok {
			return nil, fmt.Errorf("want id:base64-secret, got an entry without a colon")
		}
		b, err := base64.StdEncoding.DecodeString(secret)
		if err != nil {
			if b, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(secret, "=")); err != nil {
				return nil, fmt.Errorf("%s: the secret is not base64", id)
			}
		}
		s.Keys = append(s.Keys, Key{ID: id, Secret: b})
	}
	if s.Active == "" {
		s.Active = s.Keys[0].ID
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	return s, nil
}
