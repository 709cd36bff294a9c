// Package auth authenticates and authorizes the HTTP surfaces of Lumen (DICOMweb,
// WADO-URI, the EMR API and widget, FHIR, the viewer, the admin API):
//
//   - OpenID Connect / OAuth2 bearer tokens (RFC 6750) that are JWTs signed by a
//     configured issuer, verified against the issuer's JWKS (discovered from
//     /.well-known/openid-configuration) with github.com/coreos/go-oidc: signature, issuer,
//     audience and expiry; unsigned tokens (alg none) are refused;
//   - static API tokens of service accounts, configured by SHA-256 digest only (the
//     check, BearerMatches, also admits the EMR's link-minting accounts);
//   - the signed links of emr/links, admitted earlier by the EMR guard.
//
// A principal has roles (read, write, delete, admin) and may be limited to one patient
// (a SMART-style patient claim): that limit is put in the request context as an
// index.Scope, so every index query made for the request is restricted to the patient.
package auth
