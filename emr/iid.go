package emr

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr/internal/valid"
	"github.com/lumenpacs/lumen/index"
)

// iidParams are the parameters of IHE Invoke Image Display (RAD-106) Lumen knows; any
// other parameter is refused, so that a misspelt one is not silently ignored.
var iidParams = map[string]bool{
	"requestType": true, "studyUID": true, "accessionNumber": true, "patientID": true, "patientName": true,
	"patientBirthDate": true, "lowerDateTime": true, "upperDateTime": true, "mostRecentResults": true,
	"modalitiesInStudy": true, "viewerType": true, "diagnosticQuality": true, "keyImagesOnly": true,
}

var iidDateTime = regexp.MustCompile(`^(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$`)

// iidError is a parameter error answered with a page.
type iidError struct {
	code  int
	title string
	text  string
}

func badIID(format string, args ...any) *iidError {
	return &iidError{http.StatusBadRequest, "The image display request is not valid", fmt.Sprintf(format, args...)}
}

// parseCX splits an HL7 CX patient identifier (ID^^^Issuer, ID^^^&OID&ISO,
// ID^^^Issuer&OID&ISO) into the ID and the issuer Lumen stores as IssuerOfPatientID:
// the namespace ID of the assigning authority, else its universal ID.
func parseCX(v string) (id, issuer string, err error) {
	comps := strings.Split(v, "^")
	id = comps[0]
	if !valid.PatientID(id) {
		return "", "", fmt.Errorf("the patient ID %q is empty or longer than 64 characters", v)
	}
	if len(comps) >= 4 {
		sub := strings.Split(comps[3], "&")
		issuer = sub[0]
		if issuer == "" && len(sub) > 1 {
			issuer = sub[1]
		}
		if !valid.Issuer(issuer) {
			return "", "", fmt.Errorf("the issuer of patient ID %q is longer than 64 characters or not text", v)
		}
	}
	return id, issuer, nil
}

// iidDate turns an IID date-time into DICOM date and time.
func iidDate(v string) (date, tm string, ok bool) {
	m := iidDateTime.FindStringSubmatch(v)
	if m == nil {
		return "", "", false
	}
	return m[1] + m[2] + m[3], m[4] + m[5] + m[6], true
}

func boolParam(q url.Values, name string) (bool, *iidError) {
	switch strings.ToLower(q.Get(name)) {
	case "", "false":
		return false, nil
	case "true":
		return true, nil
	}
	return false, badIID("%s must be true or false, not %q.", name, q.Get(name))
}

// invokeImageDisplay answers GET /IHEInvokeImageDisplay: it resolves the request to
// studies and redirects to the viewer (OHIF when configured and not overridden by
// viewerType=IHE_BIR, else the built-in viewer). Errors are pages a clinician can read:
// 400 for parameters, 404 when nothing matches.
func (s *Service) invokeImageDisplay(c echo.Context) error {
	uids, opts, ierr := s.resolveIID(c)
	if ierr != nil {
		if ierr.code == http.StatusServiceUnavailable {
			s.log().Warn("emr: IID lookup failed", "err", ierr.text)
			ierr.text = "The archive could not answer. Try again in a moment."
		}
		return s.page(c, ierr.code, ierr.title, ierr.text)
	}
	s.log().Info("audit: invoke image display", "studies", len(uids), "viewer", opts.viewer, "remote", c.RealIP())
	var target string
	if opts.viewer == "OHIF" {
		target = strings.ReplaceAll(s.OHIFURL, "{studies}", url.QueryEscape(strings.Join(uids, ",")))
	} else {
		v := url.Values{}
		if len(uids) > 1 {
			v.Set("studies", strings.Join(uids, ","))
		}
		if opts.diagnostic {
			v.Set("quality", "diagnostic")
		}
		target = s.root(c) + "/viewer/studies/" + uids[0]
		if len(v) > 0 {
			target += "?" + v.Encode()
		}
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Redirect(http.StatusFound, target)
}

type iidOptions struct {
	viewer     string // "IHE_BIR" (built in) or "OHIF"
	diagnostic bool
	keyOnly    bool
}

func (s *Service) resolveIID(c echo.Context) ([]string, iidOptions, *iidError) {
	q := c.Request().URL.Query()
	var opts iidOptions
	for k := range q {
		if !iidParams[k] {
			return nil, opts, badIID("The parameter %q is not part of IHE Invoke Image Display.", k)
		}
	}
	switch vt := q.Get("viewerType"); {
	case vt == "" && s.OHIFURL != "":
		opts.viewer = "OHIF"
	case vt == "" || vt == "IHE_BIR":
		opts.viewer = "IHE_BIR"
	case strings.EqualFold(vt, "OHIF") && s.OHIFURL != "":
		opts.viewer = "OHIF"
	default:
		return nil, opts, badIID("viewerType %q is not available here; use IHE_BIR (the built-in viewer)%s.", vt, map[bool]string{true: " or OHIF", false: ""}[s.OHIFURL != ""])
	}
	var ierr *iidError
	if opts.diagnostic, ierr = boolParam(q, "diagnosticQuality"); ierr != nil {
		return nil, opts, ierr
	}
	if opts.keyOnly, ierr = boolParam(q, "keyImagesOnly"); ierr != nil {
		return nil, opts, ierr
	}
	ctx := c.Request().Context()
	max := s.maxIIDStudies()
	find := func(ctx context.Context, q index.Query) ([]index.Study, *iidError) {
		res, err := s.Index.Find(ctx, q)
		if err != nil {
			return nil, &iidError{http.StatusServiceUnavailable, "The images cannot be shown right now", err.Error()}
		}
		return res.Studies, nil
	}
	var uids []string
	switch rt := q.Get("requestType"); rt {
	case "STUDY":
		for _, p := range []string{"patientID", "patientName", "patientBirthDate", "lowerDateTime", "upperDateTime", "mostRecentResults", "modalitiesInStudy"} {
			if q.Has(p) {
				return nil, opts, badIID("%s belongs to requestType=PATIENT, not STUDY.", p)
			}
		}
		studyUIDs, accessions := q.Get("studyUID"), q.Get("accessionNumber")
		switch {
		case studyUIDs != "" && accessions != "":
			return nil, opts, badIID("Give either studyUID or accessionNumber, not both.")
		case studyUIDs == "" && accessions == "":
			return nil, opts, badIID("requestType=STUDY needs studyUID or accessionNumber.")
		}
		// One index query resolves the whole list, whatever its length (which is bounded).
		if studyUIDs != "" {
			list := strings.Split(studyUIDs, ",")
			if len(list) > max {
				return nil, opts, badIID("studyUID lists %d studies; at most %d can be opened at once.", len(list), max)
			}
			for _, u := range list {
				if !dcm.ValidUID(u) {
					return nil, opts, badIID("%q is not a valid Study Instance UID.", u)
				}
			}
			st, ierr := find(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Values: list}}})
			if ierr != nil {
				return nil, opts, ierr
			}
			found := map[string]bool{}
			for _, x := range st {
				found[x.StudyInstanceUID] = true
			}
			for _, u := range list { // in the order of the request
				if found[u] {
					uids = append(uids, u)
					found[u] = false
				}
			}
		} else {
			list := strings.Split(accessions, ",")
			if len(list) > max {
				return nil, opts, badIID("accessionNumber lists %d accession numbers; at most %d can be opened at once.", len(list), max)
			}
			for _, a := range list {
				if !valid.Accession(a) {
					return nil, opts, badIID("%q is not an accession number.", a)
				}
			}
			st, ierr := find(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagAccessionNumber, Values: list}}, Limit: max + 1})
			if ierr != nil {
				return nil, opts, ierr
			}
			if len(st) > max {
				return nil, opts, badIID("These accession numbers name more than %d studies; at most %d can be opened at once.", max, max)
			}
			byAccession := map[string][]string{}
			for _, x := range st { // newest first within an accession number
				byAccession[x.AccessionNumber] = append(byAccession[x.AccessionNumber], x.StudyInstanceUID)
			}
			for _, a := range list { // in the order of the request
				uids = append(uids, byAccession[a]...)
				delete(byAccession, a)
			}
		}
		if len(uids) == 0 {
			return nil, opts, &iidError{http.StatusNotFound, "No images found", "The archive has no study with the given identifiers. The images may not have arrived yet."}
		}
	case "PATIENT":
		for _, p := range []string{"studyUID", "accessionNumber"} {
			if q.Has(p) {
				return nil, opts, badIID("%s belongs to requestType=STUDY, not PATIENT.", p)
			}
		}
		if q.Get("patientID") == "" {
			return nil, opts, badIID("requestType=PATIENT needs patientID (ID^^^Issuer).")
		}
		pid, issuer, err := parseCX(q.Get("patientID"))
		if err != nil {
			return nil, opts, badIID("%s.", err.Error())
		}
		var filters []index.Filter
		var lo, hi string
		var loT, hiT string
		if v := q.Get("lowerDateTime"); v != "" {
			var ok bool
			if lo, loT, ok = iidDate(v); !ok {
				return nil, opts, badIID("lowerDateTime %q is not a date-time (YYYY-MM-DDThh:mm:ss).", v)
			}
		}
		if v := q.Get("upperDateTime"); v != "" {
			var ok bool
			if hi, hiT, ok = iidDate(v); !ok {
				return nil, opts, badIID("upperDateTime %q is not a date-time (YYYY-MM-DDThh:mm:ss).", v)
			}
		}
		if lo != "" && hi != "" && lo+loT > hi+hiT {
			return nil, opts, badIID("lowerDateTime is after upperDateTime.")
		}
		if lo != "" || hi != "" {
			filters = append(filters, index.Filter{Tag: dcm.TagStudyDate, Value: lo + "-" + hi})
		}
		most := 0
		if v := q.Get("mostRecentResults"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > max {
				return nil, opts, badIID("mostRecentResults must be a whole number from 1 to %d, not %q.", max, v)
			}
			most = n
		}
		var mods []string
		if v := q.Get("modalitiesInStudy"); v != "" {
			for _, m := range strings.Split(v, ",") {
				if !valid.Modality(m) {
					return nil, opts, badIID("%q is not a modality code (CT, MR, XA, ...).", m)
				}
				mods = append(mods, m)
			}
			filters = append(filters, index.Filter{Tag: dcm.TagModalitiesInStudy, Value: strings.Join(mods, `\`)})
		}
		// The pair (ID, issuer) identifies the patient exactly, in the index query; the
		// query reads at most one study more than a request may open.
		pctx := index.WithScope(ctx, index.Scope{Patient: &index.PatientKey{ID: pid, Issuer: issuer}})
		iq := index.Query{Level: index.StudyLevel, Filters: filters, Limit: max + 1}
		if most > 0 && loT == "" && hiT == "" {
			iq.Limit = most
		}
		st, ierr := find(pctx, iq)
		if ierr != nil {
			return nil, opts, ierr
		}
		for _, x := range st {
			// Times count on the bounding days only.
			t := normTime(x.StudyTime)
			if lo != "" && x.StudyDate == lo && loT != "" && t < loT || hi != "" && x.StudyDate == hi && hiT != "" && t > hiT {
				continue
			}
			uids = append(uids, x.StudyInstanceUID) // newest first
			if most > 0 && len(uids) == most {
				break
			}
		}
		if len(st) > max && (most == 0 || len(uids) < most) {
			return nil, opts, badIID("More than %d studies of this patient match; narrow the request with mostRecentResults, lowerDateTime and upperDateTime, or modalitiesInStudy.", max)
		}
		if len(uids) == 0 {
			return nil, opts, &iidError{http.StatusNotFound, "No images found", "The archive has no study of this patient that matches the request."}
		}
	case "":
		return nil, opts, badIID("requestType is missing: STUDY or PATIENT.")
	default:
		return nil, opts, badIID("requestType %q is not supported: STUDY or PATIENT.", rt)
	}
	return uids, opts, nil
}

// normTime pads a DICOM TM to hhmmss for comparison.
func normTime(t string) string {
	t, _, _ = strings.Cut(t, ".")
	for len(t) < 6 {
		t += "0"
	}
	return t[:6]
}
