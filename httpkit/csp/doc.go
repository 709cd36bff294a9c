// Package csp sets the security headers of Lumen's pages for people (the EMR widget,
// launch pages and the built-in viewer): a Content Security Policy (W3C CSP Level 3) that
// admits only Lumen's own resources and nonce-carrying inline code, framing by Lumen and
// configured EMR origins only (frame-ancestors), no referrer, no caching.
package csp
