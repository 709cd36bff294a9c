package emr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr/internal/valid"
	"github.com/lumenpacs/lumen/index"
)

var iidDateTime = regexp.MustCompile(`^(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2})(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$`)

// iidError is a parameter error answered with a page.
type iidError struct {
	code  int
	title string
	text  string
	// merged, when set, is the answer instead: the patient record was merged away.
	merged *mergedError
}

func badIID(format string, args ...any) *iidError {
	return &iidError{code: http.StatusBadRequest, title: "The image display request is not valid", text: fmt.Sprintf(format, args...)}
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

// invokeImageDisplay answers GET /IHEInvokeImageDisplay: it resolves the request to
// studies and redirects to the viewer (OHIF when configured and not overridden by
// viewerType=IHE_BIR, else the built-in viewer). Errors are pages a clinician can read:
// 400 for parameters, 404 when nothing matches.
func (s *Service) invokeImageDisplay(c echo.Context) error {
	uids, opts, ierr := s.resolveIID(c)
	if ierr != nil && ierr.merged != nil {
		link := ""
		if sv := ierr.merged.survivor; sv != nil {
			link = "/IHEInvokeImageDisplay?" + url.Values{"requestType": {"PATIENT"}, "patientID": {cx(*sv)}}.Encode()
		}
		return s.mergedPage(c, ierr.merged, link)
	}
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

// iidRequest is an IHE Invoke Image Display request as its parameters say.
type iidRequest struct {
	iidOptions
	requestType string // STUDY or PATIENT
	// STUDY: one of the lists, in the order of the request.
	studyUIDs, accessions []string
	// PATIENT: the patient, the bounds of StudyDate and StudyTime ("": open), at most
	// how many studies (0: no limit) of which modalities (none: any).
	patient          index.PatientKey
	lo, loT, hi, hiT string
	most             int
	modalities       []string
}

// iidParam is a parameter of IHE Invoke Image Display: its name, the request type it
// belongs to ("": every request) and its reader (nil: accepted, not used), which reads
// the parameter's value ("" when absent) into the request.
type iidParam struct {
	name string
	of   string
	read func(s *Service, r *iidRequest, name, v string) *iidError
}

// iidParams are the parameters of IHE Invoke Image Display (RAD-106) Lumen knows; any
// other parameter is refused, so that a misspelt one is not silently ignored. A
// repeated parameter counts once, with its first value.
//
// The order is the order of the checks, so of the errors: first the parameters of every
// request (requestType last), then no parameter of the other request type may be
// present (even empty), then a STUDY request names either studyUID or accessionNumber,
// then the parameters of the request's type are read.
var iidParams = []iidParam{
	{"viewerType", "", readViewerType},
	{"diagnosticQuality", "", readFlag(func(r *iidRequest) *bool { return &r.diagnostic })},
	{"keyImagesOnly", "", readFlag(func(r *iidRequest) *bool { return &r.keyOnly })},
	{"requestType", "", readRequestType},
	{"studyUID", "STUDY", readStudyUIDs},
	{"accessionNumber", "STUDY", readAccessions},
	{"patientID", "PATIENT", readPatientID},
	{"patientName", "PATIENT", nil},
	{"patientBirthDate", "PATIENT", nil},
	{"lowerDateTime", "PATIENT", readDateTime},
	{"upperDateTime", "PATIENT", readDateTime},
	{"mostRecentResults", "PATIENT", readMostRecent},
	{"modalitiesInStudy", "PATIENT", readModalities},
}

// readIID reads the request's parameters by the table iidParams.
func (s *Service) readIID(q url.Values) (*iidRequest, *iidError) {
	for k := range q {
		if !slices.ContainsFunc(iidParams, func(p iidParam) bool { return p.name == k }) {
			return nil, badIID("The parameter %q is not part of IHE Invoke Image Display.", k)
		}
	}
	r := &iidRequest{}
	for _, p := range iidParams {
		switch {
		case p.of == "":
			if ierr := p.read(s, r, p.name, q.Get(p.name)); ierr != nil {
				return nil, ierr
			}
		case p.of != r.requestType && q.Has(p.name):
			return nil, badIID("%s belongs to requestType=%s, not %s.", p.name, p.of, r.requestType)
		}
	}
	if u, a := q.Get("studyUID"), q.Get("accessionNumber"); r.requestType == "STUDY" {
		switch {
		case u != "" && a != "":
			return nil, badIID("Give either studyUID or accessionNumber, not both.")
		case u == "" && a == "":
			return nil, badIID("requestType=STUDY needs studyUID or accessionNumber.")
		}
	}
	for _, p := range iidParams {
		if p.of == r.requestType && p.read != nil {
			if ierr := p.read(s, r, p.name, q.Get(p.name)); ierr != nil {
				return nil, ierr
			}
		}
	}
	return r, nil
}

func readViewerType(s *Service, r *iidRequest, _, v string) *iidError {
	switch {
	case v == "" && s.OHIFURL != "":
		r.viewer = "OHIF"
	case v == "" || v == "IHE_BIR":
		r.viewer = "IHE_BIR"
	case strings.EqualFold(v, "OHIF") && s.OHIFURL != "":
		r.viewer = "OHIF"
	default:
		ohif := ""
		if s.OHIFURL != "" {
			ohif = " or OHIF"
		}
		return badIID("viewerType %q is not available here; use IHE_BIR (the built-in viewer)%s.", v, ohif)
	}
	return nil
}

// readFlag reads true or false (in any case; absent is false) into the field.
func readFlag(field func(*iidRequest) *bool) func(*Service, *iidRequest, string, string) *iidError {
	return func(_ *Service, r *iidRequest, name, v string) *iidError {
		switch strings.ToLower(v) {
		case "", "false":
			*field(r) = false
		case "true":
			*field(r) = true
		default:
			return badIID("%s must be true or false, not %q.", name, v)
		}
		return nil
	}
}

func readRequestType(_ *Service, r *iidRequest, _, v string) *iidError {
	switch v {
	case "STUDY", "PATIENT":
		r.requestType = v
		return nil
	case "":
		return badIID("requestType is missing: STUDY or PATIENT.")
	}
	return badIID("requestType %q is not supported: STUDY or PATIENT.", v)
}

func readStudyUIDs(s *Service, r *iidRequest, _, v string) *iidError {
	if v == "" {
		return nil
	}
	list := strings.Split(v, ",")
	if max := s.maxIIDStudies(); len(list) > max {
		return badIID("studyUID lists %d studies; at most %d can be opened at once.", len(list), max)
	}
	for _, u := range list {
		if !dcm.ValidUID(u) {
			return badIID("%q is not a valid Study Instance UID.", u)
		}
	}
	r.studyUIDs = list
	return nil
}

func readAccessions(s *Service, r *iidRequest, _, v string) *iidError {
	if v == "" {
		return nil
	}
	list := strings.Split(v, ",")
	if max := s.maxIIDStudies(); len(list) > max {
		return badIID("accessionNumber lists %d accession numbers; at most %d can be opened at once.", len(list), max)
	}
	for _, a := range list {
		if !valid.Accession(a) {
			return badIID("%q is not an accession number.", a)
		}
	}
	r.accessions = list
	return nil
}

func readPatientID(_ *Service, r *iidRequest, _, v string) *iidError {
	if v == "" {
		return badIID("requestType=PATIENT needs patientID (ID^^^Issuer).")
	}
	id, issuer, err := parseCX(v)
	if err != nil {
		return badIID("%s.", err.Error())
	}
	r.patient = index.PatientKey{ID: id, Issuer: issuer}
	return nil
}

// readDateTime reads lowerDateTime or upperDateTime; the upper bound, read after the
// lower, may not be before it.
func readDateTime(_ *Service, r *iidRequest, name, v string) *iidError {
	if v == "" {
		return nil
	}
	date, tm, ok := iidDate(v)
	if !ok {
		return badIID("%s %q is not a date-time (YYYY-MM-DDThh:mm:ss).", name, v)
	}
	if name == "lowerDateTime" {
		r.lo, r.loT = date, tm
		return nil
	}
	r.hi, r.hiT = date, tm
	if r.lo != "" && r.lo+r.loT > r.hi+r.hiT {
		return badIID("lowerDateTime is after upperDateTime.")
	}
	return nil
}

func readMostRecent(s *Service, r *iidRequest, _, v string) *iidError {
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if max := s.maxIIDStudies(); err != nil || n < 1 || n > max {
		return badIID("mostRecentResults must be a whole number from 1 to %d, not %q.", max, v)
	}
	r.most = n
	return nil
}

func readModalities(_ *Service, r *iidRequest, _, v string) *iidError {
	if v == "" {
		return nil
	}
	r.modalities = strings.Split(v, ",")
	for _, m := range r.modalities {
		if !valid.Modality(m) {
			return badIID("%q is not a modality code (CT, MR, XA, ...).", m)
		}
	}
	return nil
}

// resolveIID reads the request and finds its studies.
func (s *Service) resolveIID(c echo.Context) ([]string, iidOptions, *iidError) {
	r, ierr := s.readIID(c.Request().URL.Query())
	if ierr != nil {
		return nil, iidOptions{}, ierr
	}
	var uids []string
	switch ctx := c.Request().Context(); {
	case r.studyUIDs != nil:
		uids, ierr = s.studiesByUID(ctx, r.studyUIDs)
	case r.accessions != nil:
		uids, ierr = s.studiesByAccession(ctx, r.accessions)
	default:
		uids, ierr = s.patientStudies(ctx, r)
	}
	return uids, r.iidOptions, ierr
}

// findStudies asks the index; a failure is a 503 page.
func (s *Service) findStudies(ctx context.Context, q index.Query) ([]index.Study, *iidError) {
	res, err := s.Index.Find(ctx, q)
	if err != nil {
		return nil, &iidError{code: http.StatusServiceUnavailable, title: "The images cannot be shown right now", text: err.Error()}
	}
	return res.Studies, nil
}

// noStudy is the page of a STUDY request that finds nothing.
func noStudy() *iidError {
	return &iidError{code: http.StatusNotFound, title: "No images found", text: "The archive has no study with the given identifiers. The images may not have arrived yet."}
}

// studiesByUID resolves a list of Study Instance UIDs with one index query, keeping
// the request's order and the studies the archive has.
func (s *Service) studiesByUID(ctx context.Context, list []string) ([]string, *iidError) {
	st, ierr := s.findStudies(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Values: list}}})
	if ierr != nil {
		return nil, ierr
	}
	found := map[string]bool{}
	for _, x := range st {
		found[x.StudyInstanceUID] = true
	}
	var uids []string
	for _, u := range list { // in the order of the request
		if found[u] {
			uids = append(uids, u)
			found[u] = false
		}
	}
	if len(uids) == 0 {
		return nil, noStudy()
	}
	return uids, nil
}

// studiesByAccession resolves a list of accession numbers with one index query, in the
// request's order (newest first within an accession number); more studies than a
// request may open are refused.
func (s *Service) studiesByAccession(ctx context.Context, list []string) ([]string, *iidError) {
	max := s.maxIIDStudies()
	st, ierr := s.findStudies(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagAccessionNumber, Values: list}}, Limit: max + 1})
	if ierr != nil {
		return nil, ierr
	}
	if len(st) > max {
		return nil, badIID("These accession numbers name more than %d studies; at most %d can be opened at once.", max, max)
	}
	byAccession := map[string][]string{}
	for _, x := range st { // newest first within an accession number
		byAccession[x.AccessionNumber] = append(byAccession[x.AccessionNumber], x.StudyInstanceUID)
	}
	var uids []string
	for _, a := range list { // in the order of the request
		uids = append(uids, byAccession[a]...)
		delete(byAccession, a)
	}
	if len(uids) == 0 {
		return nil, noStudy()
	}
	return uids, nil
}

// patientStudies finds the studies of a PATIENT request, newest first.
func (s *Service) patientStudies(ctx context.Context, r *iidRequest) ([]string, *iidError) {
	max := s.maxIIDStudies()
	var filters []index.Filter
	if r.lo != "" || r.hi != "" {
		filters = append(filters, index.Filter{Tag: dcm.TagStudyDate, Value: r.lo + "-" + r.hi})
	}
	if r.modalities != nil {
		filters = append(filters, index.Filter{Tag: dcm.TagModalitiesInStudy, Value: strings.Join(r.modalities, `\`)})
	}
	// A record merged away opens nothing: the page says so (to an unscoped caller, where
	// its studies are now), never the survivor's studies under the old identifier.
	var me *mergedError
	if err := s.checkMerged(ctx, r.patient); errors.As(err, &me) {
		return nil, &iidError{merged: me}
	} else if err != nil {
		return nil, &iidError{code: http.StatusServiceUnavailable, title: "The images cannot be shown right now", text: err.Error()}
	}
	// The pair (ID, issuer) identifies the patient exactly, in the index query; the
	// query reads at most one study more than a request may open.
	pctx := index.WithScope(ctx, index.Scope{Patient: &r.patient})
	iq := index.Query{Level: index.StudyLevel, Filters: filters, Limit: max + 1}
	if r.most > 0 && r.loT == "" && r.hiT == "" {
		iq.Limit = r.most
	}
	st, ierr := s.findStudies(pctx, iq)
	if ierr != nil {
		return nil, ierr
	}
	var uids []string
	for _, x := range st {
		// Times count on the bounding days only.
		t := normTime(x.StudyTime)
		if r.lo != "" && x.StudyDate == r.lo && r.loT != "" && t < r.loT || r.hi != "" && x.StudyDate == r.hi && r.hiT != "" && t > r.hiT {
			continue
		}
		uids = append(uids, x.StudyInstanceUID) // newest first
		if r.most > 0 && len(uids) == r.most {
			break
		}
	}
	if len(st) > max && (r.most == 0 || len(uids) < r.most) {
		return nil, badIID("More than %d studies of this patient match; narrow the request with mostRecentResults, lowerDateTime and upperDateTime, or modalitiesInStudy.", max)
	}
	if len(uids) == 0 {
		return nil, &iidError{code: http.StatusNotFound, title: "No images found", text: "The archive has no study of this patient that matches the request."}
	}
	return uids, nil
}

// normTime pads a DICOM TM to hhmmss for comparison.
func normTime(t string) string {
	t, _, _ = strings.Cut(t, ".")
	for len(t) < 6 {
		t += "0"
	}
	return t[:6]
}
