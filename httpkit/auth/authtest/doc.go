// Package authtest is a test OpenID Connect issuer for Lumen's authentication tests: a
// discovery document, a JWKS and a signer, on a loopback HTTP server.
package authtest
