package fhir

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/index"
)

// mergedText is the diagnostics of a refusal to a caller limited to a patient record that
// was merged into another one; it names no identifier.
const mergedText = "the patient record this access is limited to was merged into another one; a new token (or link) is needed"

// identity is the index's patient records, when it keeps them (index.Identity, found by
// type assertion); nil otherwise.
func (s *Service) identity() index.Identity {
	id, _ := s.Index.(index.Identity)
	return id
}

// resolve returns the survivor of k and whether k was merged into it; an unknown k is not
// merged.
func (s *Service) resolve(ctx context.Context, k index.PatientKey) (index.PatientKey, bool, error) {
	id := s.identity()
	if id == nil {
		return index.PatientKey{}, false, nil
	}
	survivor, merged, err := id.ResolvePatient(ctx, k)
	if errors.Is(err, index.ErrNotFound) {
		return index.PatientKey{}, false, nil
	}
	return survivor, merged, err
}

// scopeMerged reports whether the caller is limited to a patient (index.Scope in the
// request's context) whose record was merged away. Such a caller is refused with 403:
// its access is neither widened to the survivor nor silently emptied.
func (s *Service) scopeMerged(ctx context.Context) (bool, error) {
	for _, sc := range index.Scopes(ctx) {
		if sc.Patient == nil {
			continue
		}
		if _, merged, err := s.resolve(ctx, *sc.Patient); err != nil || merged {
			return merged, err
		}
	}
	return false, nil
}

// refuseMerged answers a caller limited to a merged-away patient.
func refuseMerged(c echo.Context) error {
	return outcome(c, http.StatusForbidden, "forbidden", mergedText)
}

// subjectOf is the reference to a study's patient: by identifier (the issuer as
// system), with a Patient/<id> reference when there is no issuer, and the name as the
// index's patient record has it (corrected by HL7 ADT or the admin API).
func subjectOf(p *index.Patient) Reference {
	r := Reference{Identifier: &Identifier{System: issuerSystem(p.IssuerOfPatientID), Value: p.PatientID}, Display: personDisplay(p.PatientName)}
	if p.IssuerOfPatientID == "" && fhirID.MatchString(p.PatientID) {
		r.Reference = "Patient/" + p.PatientID
	}
	return r
}

// humanName turns a DICOM person name (UTF-8, PN form) into FHIR HumanNames: one per
// component group (alphabetic, ideographic, phonetic), family, given (given and middle
// names), prefix and suffix, and the text as personDisplay writes the group.
func humanName(pn string) []HumanName {
	var out []HumanName
	for _, g := range strings.Split(pn, "=") {
		c := strings.Split(g, "^")
		at := func(i int) string {
			if i < len(c) {
				return strings.TrimSpace(c[i])
			}
			return ""
		}
		n := HumanName{Family: at(0), Text: personDisplay(g)}
		if n.Text == "" {
			continue
		}
		n.Use = "official"
		for _, v := range []string{at(1), at(2)} {
			n.Given = append(n.Given, strings.Fields(v)...)
		}
		if v := at(3); v != "" {
			n.Prefix = []string{v}
		}
		if v := at(4); v != "" {
			n.Suffix = []string{v}
		}
		out = append(out, n)
	}
	return out
}

// gender maps PatientSex (M, F, O) to the FHIR administrative gender; anything else is
// unknown, and no value none.
func gender(sex string) string {
	switch strings.ToUpper(strings.TrimSpace(sex)) {
	case "":
		return ""
	case "M":
		return "male"
	case "F":
		return "female"
	case "O":
		return "other"
	}
	return "unknown"
}

// birthDate turns a DICOM DA into a FHIR date.
func birthDate(da string) string {
	if len(da) != 8 {
		return ""
	}
	return da[:4] + "-" + da[4:6] + "-" + da[6:]
}

// readPatient answers GET /fhir/Patient/{id}: the patient without an issuer whose
// PatientID is id (the reference ImagingStudy.subject gives), with the demographics of
// the index's patient record. A record merged into another one is answered as FHIR
// represents a merge: active false and a link of type replaced-by to the survivor; a
// caller limited to a patient (a patient token) whose record was merged is refused
// (403).
func (s *Service) readPatient(c echo.Context) error {
	if !acceptable(c) {
		return outcome(c, http.StatusNotAcceptable, "not-supported", "only application/fhir+json is offered")
	}
	id := c.Param("id")
	if !fhirID.MatchString(id) {
		return outcome(c, http.StatusNotFound, "not-found", "Patient ids are the Patient IDs of patients without an issuer; search ImagingStudy by subject:identifier for the others")
	}
	ctx := c.Request().Context()
	if merged, err := s.scopeMerged(ctx); err != nil {
		return s.failed(c, err)
	} else if merged {
		return refuseMerged(c)
	}
	k := index.PatientKey{ID: id}
	res, err := s.Index.Find(index.WithScope(ctx, index.Scope{Patient: &k}), index.Query{Level: index.PatientLevel, Limit: 1})
	if err != nil {
		return s.failed(c, err)
	}
	p := Patient{ResourceType: "Patient", ID: id, Identifier: []Identifier{{Use: "usual", Value: id}}}
	if len(res.Patients) == 1 {
		rec := &res.Patients[0]
		active := true
		p.Active, p.Name, p.Gender, p.BirthDate = &active, humanName(rec.PatientName), gender(rec.PatientSex), birthDate(rec.PatientBirthDate)
		return write(c, http.StatusOK, p)
	}
	// Merged records are not patients of the patient level; a merged one is answered to
	// an unscoped caller, with the survivor. A scoped caller only learns of its own.
	survivor, merged, err := s.resolve(ctx, k)
	if err != nil {
		return s.failed(c, err)
	}
	if !merged || len(index.Scopes(ctx)) > 0 {
		return outcome(c, http.StatusNotFound, "not-found", "no Patient "+id)
	}
	active := false
	p.Active = &active
	p.Link = []PatientLink{{Other: subjectOf(&index.Patient{PatientID: survivor.ID, IssuerOfPatientID: survivor.Issuer}), Type: "replaced-by"}}
	return write(c, http.StatusOK, p)
}
