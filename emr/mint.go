package emr

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr/internal/valid"
	"github.com/lumenpacs/lumen/emr/links"
	"github.com/lumenpacs/lumen/index"
)

// MintRequest is the body of POST /emr/v1/links.
type MintRequest struct {
	Scope            links.Scope `json:"scope"` // study or patient
	StudyInstanceUID string      `json:"studyInstanceUID,omitempty"`
	PatientID        string      `json:"patientID,omitempty"`
	Issuer           string      `json:"issuerOfPatientID,omitempty"`
	// TTLSeconds is the link's lifetime (default DefaultLinkTTL, at most MaxLinkTTL).
	TTLSeconds int `json:"ttlSeconds,omitempty"`
}

// MintResponse is the answer of POST /emr/v1/links: the token and the URLs that use it.
type MintResponse struct {
	Token        string    `json:"token"`
	TokenID      string    `json:"tokenID"`
	KeyID        string    `json:"keyID"`
	Scope        string    `json:"scope"`
	Expires      time.Time `json:"expires"`
	ViewerURL    string    `json:"viewerUrl"`
	ThumbnailURL string    `json:"thumbnailUrl,omitempty"` // study scope
	ChartURL     string    `json:"chartUrl,omitempty"`     // patient scope
	StudiesURL   string    `json:"studiesUrl,omitempty"`   // patient scope
}

// mint answers POST /emr/v1/links: an EMR service account (a bearer token whose SHA-256
// is configured) mints a link for a study or a patient.
func (s *Service) mint(c echo.Context) error {
	if !s.mintAllowed(c) {
		s.log().Info("audit: link mint refused", "remote", c.RealIP(), "reason", "no or unknown bearer token")
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="lumen"`)
		return echo.NewHTTPError(http.StatusUnauthorized, "minting links needs the bearer token of an EMR service account")
	}
	if s.Links == nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "links are not configured (emr.link_keys)")
	}
	var req MintRequest
	if err := c.Bind(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "the body must be JSON: {scope, studyInstanceUID | patientID, issuerOfPatientID, ttlSeconds}")
	}
	ttl := DefaultLinkTTL
	if req.TTLSeconds != 0 {
		// Bounded before it is multiplied: a number of seconds whose nanoseconds overflow
		// must not wrap into a short or negative lifetime.
		if req.TTLSeconds < 0 || req.TTLSeconds > int(MaxLinkTTL/time.Second) {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("ttlSeconds must be from 1 to %d", int(MaxLinkTTL/time.Second)))
		}
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	ctx := c.Request().Context()
	root := s.root(c)
	var subject string
	resp := MintResponse{Scope: string(req.Scope)}
	switch req.Scope {
	case links.ScopeStudy:
		if !dcm.ValidUID(req.StudyInstanceUID) || req.PatientID != "" {
			return echo.NewHTTPError(http.StatusBadRequest, "a study link needs a valid studyInstanceUID (and no patientID)")
		}
		res, err := s.Index.Find(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: req.StudyInstanceUID}}})
		if err != nil {
			return err
		}
		if len(res.Studies) == 0 {
			return echo.NewHTTPError(http.StatusNotFound, "no such study")
		}
		subject = req.StudyInstanceUID
	case links.ScopePatient:
		if !valid.PatientID(req.PatientID) || !valid.Issuer(req.Issuer) || req.StudyInstanceUID != "" {
			return echo.NewHTTPError(http.StatusBadRequest, "a patient link needs patientID (1 to 64 characters of text, no control characters), optionally issuerOfPatientID (at most 64), and no studyInstanceUID")
		}
		// A record merged away is not used any more (IHE PAM): a link for it would open
		// nothing, or, followed, another identifier's studies. The minter is told where
		// the studies are now; it mints for that identifier if it means to.
		if survivor, merged, err := resolve(ctx, s.identity(), index.PatientKey{ID: req.PatientID, Issuer: req.Issuer}); err != nil {
			return err
		} else if merged {
			me := &mergedError{patient: index.PatientKey{ID: req.PatientID, Issuer: req.Issuer}, survivor: &survivor}
			s.log().Info("audit: link mint refused", "remote", c.RealIP(), "reason", ReasonPatientMerged)
			return c.JSON(http.StatusConflict, map[string]any{"error": mergedTitle + ": " + me.text() + " Mint the link for the surviving patient.",
				"reason": ReasonPatientMerged, "mergedInto": PatientRef{PatientID: survivor.ID, Issuer: survivor.Issuer}})
		}
		subject = links.PatientDigest(req.PatientID, req.Issuer)
	default:
		return echo.NewHTTPError(http.StatusBadRequest, `scope must be "study" or "patient"`)
	}
	tok, claims, err := s.Links.Sign(req.Scope, subject, ttl)
	if err != nil {
		return err
	}
	resp.Token, resp.TokenID, resp.KeyID, resp.Expires = tok, claims.ID, claims.KeyID, time.Unix(claims.Expires, 0).UTC()
	if req.Scope == links.ScopeStudy {
		resp.ViewerURL = withToken(root+"/viewer/studies/"+req.StudyInstanceUID, tok)
		resp.ThumbnailURL = withToken(root+s.dicomweb()+"/studies/"+req.StudyInstanceUID+"/thumbnail", tok)
	} else {
		p := root + "/emr/v1/patients/" + url.PathEscape(req.PatientID)
		iss := ""
		if req.Issuer != "" {
			iss = "?issuer=" + url.QueryEscape(req.Issuer)
		}
		resp.ChartURL = withToken(p+"/chart"+iss, tok)
		resp.StudiesURL = withToken(p+"/studies"+iss, tok)
		resp.ViewerURL = withToken(root+"/viewer/?PatientID="+url.QueryEscape(req.PatientID)+"&IssuerOfPatientID="+url.QueryEscape(req.Issuer), tok)
	}
	caller := sha256.Sum256([]byte(c.Request().Header.Get("Authorization")))
	s.log().Info("audit: link minted", "token_id", claims.ID, "key_id", claims.KeyID, "scope", string(req.Scope), "ttl", ttl.String(),
		"caller", hex.EncodeToString(caller[:4]), "remote", c.RealIP())
	return c.JSON(http.StatusCreated, resp)
}
