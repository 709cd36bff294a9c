package csp

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
)

// Headers sets the security headers of a page for people: only Lumen's own resources
// (and inline code carrying nonce), framing by Lumen and frameAncestors only, no
// referrer (URLs may carry link tokens), no caching.
func Headers(h http.Header, frameAncestors []string, nonce string) {
	ancestors := "'self'"
	for _, o := range frameAncestors {
		ancestors += " " + o
	}
	inline := ""
	if nonce != "" {
		inline = " 'nonce-" + nonce + "'"
	}
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data: blob:; style-src 'self'"+inline+"; script-src 'self'"+inline+
		"; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors "+ancestors)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// Nonce returns a fresh CSP nonce.
func Nonce() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawStdEncoding.EncodeToString(b[:])
}
