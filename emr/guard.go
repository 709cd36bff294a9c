package emr

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr/links"
	"github.com/lumenpacs/lumen/index"
)

const (
	tokenKey   = "lumen.link.token"
	tokenIDKey = "lumen.link.id"
)

// LinkAdmitted reports whether the guard admitted the request on a signed link (so that
// no other credentials are needed).
func LinkAdmitted(c echo.Context) bool { return linkToken(c) != "" }

// LinkTokenID is the ID of the signed link the guard admitted the request on, or "".
func LinkTokenID(c echo.Context) string {
	v, _ := c.Get(tokenIDKey).(string)
	return v
}

// linkToken is the link token the guard admitted for this request, or "".
func linkToken(c echo.Context) string {
	v, _ := c.Get(tokenKey).(string)
	return v
}

var (
	studyInPath   = regexp.MustCompile(`/studies/([0-9.]{1,64})(?:/|$)`)
	patientInPath = regexp.MustCompile(`^/emr/v1/patients/([^/]+)/`)
)

// linkSurface reports whether a path may be opened with a link token: the chart API and
// widget, the built-in viewer, and the DICOMweb and WADO-URI reads the viewer makes.
func (s *Service) linkSurface(path string) bool {
	return strings.HasPrefix(path, "/emr/v1/patients/") || path == "/viewer" || strings.HasPrefix(path, "/viewer/") ||
		strings.HasPrefix(path, s.dicomweb()+"/") || path == "/wado"
}

// Guard is middleware that admits requests carrying a link token (query parameter
// token) within the token's scope, and only for reading: the scope is put in the
// request's context (index.WithScope), so every index query the handler makes is
// restricted to it. A forged, unknown-key or out-of-scope token is refused with 403, an
// expired one with 403 and a "link expired" answer. Every use is logged for audit
// (key ID, token ID, scope, route, outcome; no patient identifier). Requests without a
// token pass untouched.
func (s *Service) Guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		tok := req.URL.Query().Get("token")
		if tok == "" {
			return next(c)
		}
		path := req.URL.Path
		audit := func(outcome string, claims *links.Claims, reason string) {
			if claims != nil {
				c.Set(tokenIDKey, claims.ID) // for the audit trail
			}
			attrs := []any{"outcome", outcome, "route", c.Path(), "method", req.Method, "remote", c.RealIP()}
			if claims != nil {
				attrs = append(attrs, "key_id", claims.KeyID, "token_id", claims.ID, "scope", string(claims.Scope))
			}
			if reason != "" {
				attrs = append(attrs, "reason", reason)
			}
			s.log().Info("audit: link use", attrs...)
		}
		if !s.linkSurface(path) {
			audit("refused", nil, "not a link surface")
			return s.refuse(c, http.StatusForbidden, "Links do not open this resource", "A signed link opens the chart, the viewer and the images they show, nothing else.")
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			audit("refused", nil, "not a read")
			return s.refuse(c, http.StatusForbidden, "Links are read-only", "A signed link gives read access only.")
		}
		if s.Links == nil {
			audit("refused", nil, "links not configured")
			return s.refuse(c, http.StatusForbidden, "Links are not enabled", "This archive has no link keys configured.")
		}
		claims, err := s.Links.Verify(tok)
		if errors.Is(err, links.ErrExpired) {
			audit("expired", claims, "")
			return s.refuse(c, http.StatusForbidden, "This link has expired", "Links to images are valid for a limited time. Open the images again from the patient's chart to get a new link.")
		}
		if err != nil {
			audit("refused", nil, err.Error())
			return s.refuse(c, http.StatusForbidden, "This link is not valid", "The link was not issued by this archive, or it was changed. Open the images again from the patient's chart.")
		}
		scope, reason, err := s.scopeFor(c, claims)
		if err != nil {
			return err
		}
		if scope == nil && reason == reasonMerged {
			audit("merged", claims, reason)
			return s.refuseMerged(c)
		}
		if scope == nil {
			audit("out of scope", claims, reason)
			return s.refuse(c, http.StatusForbidden, "This link does not open these images", "The link was issued for other images. Open them from the patient's chart.")
		}
		audit("admitted", claims, "")
		// The token has done its work: handlers see the request without it (QIDO and
		// WADO-URI refuse parameters they do not know), and it goes no further.
		q := req.URL.Query()
		q.Del("token")
		req.URL.RawQuery = q.Encode()
		c.SetRequest(req.WithContext(index.WithScope(req.Context(), *scope)))
		c.Set(tokenKey, tok)
		c.Set(tokenIDKey, claims.ID)
		return next(c)
	}
}

// scopeFor checks the request against the claims and returns the index scope to apply,
// or nil and the reason when the request is outside the claims.
func (s *Service) scopeFor(c echo.Context, claims *links.Claims) (*index.Scope, string, error) {
	req := c.Request()
	q := req.URL.Query()
	study := ""
	if m := studyInPath.FindStringSubmatch(req.URL.Path); m != nil {
		study = m[1]
	} else if v := q.Get("studyUID"); v != "" && req.URL.Path == "/wado" {
		study = v
	} else if v := q.Get("StudyInstanceUID") + q.Get("0020000D"); dcm.ValidUID(v) {
		study = v // a search for one study
	}
	if m := patientInPath.FindStringSubmatch(req.URL.Path); m != nil {
		pid, err := url.PathUnescape(m[1])
		if err != nil || !claims.AllowsPatient(pid, q.Get("issuer")) {
			return nil, "another patient, or not a patient link", nil
		}
		return s.patientScope(req.Context(), index.PatientKey{ID: pid, Issuer: q.Get("issuer")})
	}
	switch claims.Scope {
	case links.ScopeStudy:
		if study != "" && study != claims.Subject {
			return nil, "another study", nil
		}
		return &index.Scope{StudyInstanceUID: claims.Subject}, "", nil
	case links.ScopePatient:
		if study != "" {
			res, err := s.Index.Find(req.Context(), index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: study}}})
			if err != nil {
				return nil, "", err
			}
			if len(res.Studies) != 1 {
				return nil, "a study of another patient, or no such study", nil
			}
			if !claims.AllowsStudy(study, res.Studies[0].PatientID, res.Studies[0].IssuerOfPatientID) {
				// A study filed under a survivor by a merge: the link may be one for the
				// record it came from, merged away.
				if merged, err := s.linkOfMerged(req.Context(), claims, study); err != nil || merged {
					return nil, reasonMerged, err
				}
				return nil, "a study of another patient, or no such study", nil
			}
			st := res.Studies[0]
			return &index.Scope{Patient: &index.PatientKey{ID: st.PatientID, Issuer: st.IssuerOfPatientID}}, "", nil
		}
		// A search: it must name the patient of the link.
		pid, issuer := q.Get("PatientID"), q.Get("IssuerOfPatientID")
		if pid == "" {
			pid, issuer = q.Get("00100020"), q.Get("00100021")
		}
		if pid == "" || !claims.AllowsPatient(pid, issuer) {
			return nil, "a search that does not name the link's patient", nil
		}
		return s.patientScope(req.Context(), index.PatientKey{ID: pid, Issuer: issuer})
	}
	return nil, "unknown scope", nil
}

// reasonMerged is the reason scopeFor gives for a patient link whose patient record was
// merged into another one.
const reasonMerged = "patient record merged"

// patientScope is the scope of a patient link for the patient k (the pair the link's
// digest names), or reasonMerged when k's record was merged away: the link is refused,
// never widened to the survivor's studies (and the survivor is not named).
func (s *Service) patientScope(ctx context.Context, k index.PatientKey) (*index.Scope, string, error) {
	if _, merged, err := resolve(ctx, s.identity(), k); err != nil || merged {
		return nil, reasonMerged, err
	}
	return &index.Scope{Patient: &k}, "", nil
}

// linkOfMerged reports whether a patient link's digest names the patient a study was
// stored under (the Patient ID and issuer of its objects as received) and that record
// was merged away: the study now belongs to the survivor, the link to a record no longer
// used. It reads one instance of the study; it runs only for a request about to be
// refused.
func (s *Service) linkOfMerged(ctx context.Context, claims *links.Claims, study string) (bool, error) {
	id := s.identity()
	if id == nil || claims.Scope != links.ScopePatient {
		return false, nil
	}
	res, err := s.Index.Find(ctx, index.Query{Level: index.ImageLevel, Limit: 1, WithMetadata: true, Uncorrected: true, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: study}}})
	if err != nil || len(res.Instances) == 0 {
		return false, err
	}
	var md map[string]struct {
		Value []json.RawMessage `json:"Value"`
	}
	if json.Unmarshal(res.Instances[0].Metadata, &md) != nil {
		return false, nil
	}
	str := func(tag string) string {
		var v string
		if a := md[tag].Value; len(a) > 0 && json.Unmarshal(a[0], &v) == nil {
			return strings.TrimSpace(v)
		}
		return ""
	}
	k := index.PatientKey{ID: str("00100020"), Issuer: str("00100021")}
	if k.ID == "" || !claims.AllowsPatient(k.ID, k.Issuer) {
		return false, nil
	}
	_, merged, err := resolve(ctx, id, k)
	return merged, err
}

// refuseMerged refuses a patient link whose patient record was merged into another one:
// a page for people, JSON with the reason ReasonPatientMerged for the APIs. It names
// no identifier.
func (s *Service) refuseMerged(c echo.Context) error {
	p := c.Request().URL.Path
	if strings.HasPrefix(p, "/viewer") || strings.HasSuffix(p, "/chart") {
		return s.mergedPage(c, &mergedError{}, "")
	}
	return mergedJSON(c, &mergedError{})
}

// refuse answers a refused request: an HTML page for pages people look at (the widget,
// the viewer), JSON for the APIs.
func (s *Service) refuse(c echo.Context, code int, title, text string) error {
	p := c.Request().URL.Path
	if strings.HasPrefix(p, "/viewer") || strings.HasSuffix(p, "/chart") {
		return s.page(c, code, title, text)
	}
	return c.JSON(code, map[string]string{"error": title + ": " + text})
}
