package emr

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/archive/dcm"
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
	if id == "" || len(id) > 64 {
		return "", "", fmt.Errorf("the patient ID %q is empty or longer than 64 characters", v)
	}
	if len(comps) >= 4 {
		sub := strings.Split(comps[3], "&")
		issuer = sub[0]
		if issuer == "" && len(sub) > 1 {
			issuer = sub[1]
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
	find := func(filters ...index.Filter) ([]index.Study, *iidError) {
		res, err := s.Index.Find(ctx, index.Query{Level: index.StudyLevel, Filters: filters})
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
		missing := 0
		if studyUIDs != "" {
			for _, u := range strings.Split(studyUIDs, ",") {
				if !dcm.ValidUID(u) {
					return nil, opts, badIID("%q is not a valid Study Instance UID.", u)
				}
				st, ierr := find(index.Filter{Tag: dcm.TagStudyInstanceUID, Value: u})
				if ierr != nil {
					return nil, opts, ierr
				}
				if len(st) == 0 {
					missing++
					continue
				}
				uids = append(uids, u)
			}
		} else {
			for _, a := range strings.Split(accessions, ",") {
				if a == "" || len(a) > 16 || strings.ContainsAny(a, `*?\`) {
					return nil, opts, badIID("%q is not an accession number.", a)
				}
				st, ierr := find(index.Filter{Tag: dcm.TagAccessionNumber, Value: a})
				if ierr != nil {
					return nil, opts, ierr
				}
				n := 0
				for _, x := range st {
					if x.AccessionNumber == a {
						uids = append(uids, x.StudyInstanceUID)
						n++
					}
				}
				if n == 0 {
					missing++
				}
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
		filters := []index.Filter{{Tag: dcm.TagPatientID, Value: pid}}
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
			if err != nil || n < 1 || n > 1000 {
				return nil, opts, badIID("mostRecentResults must be a whole number from 1 to 1000, not %q.", v)
			}
			most = n
		}
		var mods []string
		if v := q.Get("modalitiesInStudy"); v != "" {
			for _, m := range strings.Split(v, ",") {
				if !modality.MatchString(m) {
					return nil, opts, badIID("%q is not a modality code (CT, MR, XA, ...).", m)
				}
				mods = append(mods, m)
			}
			filters = append(filters, index.Filter{Tag: dcm.TagModalitiesInStudy, Value: strings.Join(mods, `\`)})
		}
		st, ierr := find(filters...)
		if ierr != nil {
			return nil, opts, ierr
		}
		for _, x := range st {
			if x.PatientID != pid || x.IssuerOfPatientID != issuer {
				continue
			}
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
