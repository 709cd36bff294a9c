package emr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/index"
)

// ReasonPatientMerged is the "reason" of a JSON refusal (and of the chart API's answer for
// a merged-away patient): the patient record the request or its link names was merged
// into another one (HL7 A40, or its identifier changed, A47).
const ReasonPatientMerged = "patient-merged"

// Texts of the merged-patient answers. The scoped one names no identifier: a caller
// limited to the merged-away patient must not learn the survivor's.
const (
	mergedTitle      = "This patient record was merged"
	mergedScopedText = "This patient record was merged into another one, so this link no longer opens images. Open the images again from the patient's chart to get a new link."
)

// PatientRef names a patient record in an answer.
type PatientRef struct {
	PatientID string `json:"patientID"`
	Issuer    string `json:"issuerOfPatientID"`
}

// identity is the index's patient records, when the index keeps them (index.Identity,
// found by type assertion); nil otherwise, and then nothing is ever merged.
func (s *Service) identity() index.Identity {
	id, _ := s.Index.(index.Identity)
	return id
}

// resolve reports whether k names a patient record merged into another one, and the
// survivor. A key the index has no record of is not merged.
func resolve(ctx context.Context, id index.Identity, k index.PatientKey) (index.PatientKey, bool, error) {
	if id == nil {
		return index.PatientKey{}, false, nil
	}
	survivor, merged, err := id.ResolvePatient(ctx, k)
	if errors.Is(err, index.ErrNotFound) {
		return index.PatientKey{}, false, nil
	}
	if err != nil {
		return index.PatientKey{}, false, err
	}
	return survivor, merged, nil
}

// scopedMerged reports whether a patient scope of ctx (a patient link the guard admitted,
// or a token limited to one patient) names a record merged away.
func scopedMerged(ctx context.Context, id index.Identity) (bool, error) {
	for _, sc := range index.Scopes(ctx) {
		if sc.Patient == nil {
			continue
		}
		if _, merged, err := resolve(ctx, id, *sc.Patient); err != nil || merged {
			return merged, err
		}
	}
	return false, nil
}

// scoped reports whether the request's index reads are restricted (a link, or a token
// limited to one patient).
func scoped(ctx context.Context) bool { return len(index.Scopes(ctx)) > 0 }

// mergedError answers a request naming a merged-away patient. Scoped, it is a refusal
// (403) that names no identifier; otherwise (an unscoped caller, e.g. an EMR service
// account) it says where the patient's studies are now (410 Gone: the identifier is not
// used any more, IHE PAM).
type mergedError struct {
	patient  index.PatientKey
	survivor *index.PatientKey // nil when scoped
}

func (e *mergedError) Error() string { return "patient record merged" }

// checkMerged returns a *mergedError when the patient k, or a patient scope of the
// request, is a record merged away; nil when neither is.
func (s *Service) checkMerged(ctx context.Context, k index.PatientKey) error {
	id := s.identity()
	if id == nil {
		return nil
	}
	if merged, err := scopedMerged(ctx, id); err != nil {
		return err
	} else if merged {
		return &mergedError{patient: k}
	}
	survivor, merged, err := resolve(ctx, id, k)
	if err != nil || !merged {
		return err
	}
	if scoped(ctx) {
		return &mergedError{patient: k}
	}
	return &mergedError{patient: k, survivor: &survivor}
}

// status is the HTTP status of the answer.
func (e *mergedError) status() int {
	if e.survivor == nil {
		return http.StatusForbidden
	}
	return http.StatusGone
}

// text is the sentence of the answer.
func (e *mergedError) text() string {
	if e.survivor == nil {
		return mergedScopedText
	}
	return fmt.Sprintf("The patient record %s was merged into %s. Its studies are filed under that patient now; use that identifier.",
		cx(e.patient), cx(*e.survivor))
}

// cx writes a patient key in HL7 CX form (ID^^^Issuer), as IHE IID takes it.
func cx(k index.PatientKey) string {
	if k.Issuer == "" {
		return k.ID
	}
	return k.ID + "^^^" + k.Issuer
}

// chartPath is the path of a patient's chart widget (or API, with "studies").
func chartPath(k index.PatientKey, what string) string {
	p := "/emr/v1/patients/" + url.PathEscape(k.ID) + "/" + what
	if k.Issuer != "" {
		p += "?issuer=" + url.QueryEscape(k.Issuer)
	}
	return p
}

// mergedPage answers a page request (widget, IID) naming a merged-away patient: for an
// unscoped caller with a link to the survivor's chart (link "" for none).
func (s *Service) mergedPage(c echo.Context, e *mergedError, link string) error {
	data := map[string]any{"Title": mergedTitle, "Text": e.text()}
	if e.survivor != nil && link != "" {
		data["Link"] = map[string]string{"URL": link, "Text": "Open the chart of " + cx(*e.survivor)}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return s.render(c, e.status(), "page", data)
}

// mergedJSON is the JSON answer of a refusal for a merged-away patient.
func mergedJSON(c echo.Context, e *mergedError) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(e.status(), map[string]string{"error": mergedTitle + ": " + e.text(), "reason": ReasonPatientMerged})
}
