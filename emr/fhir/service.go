package fhir

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/emr/internal/valid"
	"github.com/lumenpacs/lumen/httpkit/publicurl"
	"github.com/lumenpacs/lumen/index"
)

// Index is what the service needs from the index. When the value also implements
// index.Identity, merged-away patients are detected (Patient replaced-by, searches and
// callers limited to such a patient).
type Index interface {
	Find(ctx context.Context, q index.Query) (*index.Result, error)
}

// Limits of searches.
const (
	DefaultCount = 50
	MaxCount     = 500
	// DefaultMaxMatches is the default of Service.MaxMatches.
	DefaultMaxMatches = 10000
	// MaxIdentifiers bounds the identifier values of one search.
	MaxIdentifiers = 100
)

// Code systems and fixed values.
const (
	SystemDICOMUID   = "urn:dicom:uid"
	SystemDCM        = "http://dicom.nema.org/resources/ontology/DCM"
	SystemRFC3986    = "urn:ietf:rfc:3986"
	SystemV2_0203    = "http://terminology.hl7.org/CodeSystem/v2-0203"
	SystemConnection = "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
	EndpointID       = "dicomweb"
	MediaType        = "application/fhir+json"
)

// Service serves the FHIR resources. Set the fields, then call Register once.
type Service struct {
	Index Index
	// DICOMwebBase is the path of the DICOMweb service (default "/dicom-web").
	DICOMwebBase string
	// PublicURL is the scheme and authority of URLs in answers; empty: the request's
	// scheme and the listener's address (or an allowed Host).
	PublicURL string
	// AllowedHosts are the Host header values that may root absolute URLs when
	// PublicURL is empty (publicurl.Config); otherwise the listener's address is used.
	AllowedHosts []string
	// Location is the time zone of StudyDate/StudyTime when a study does not say
	// (default time.Local): FHIR dateTimes with a time need an offset.
	Location *time.Location
	// MaxMatches bounds the studies one search may match: the index counts up to it, and
	// a search matching more is refused as too costly (narrow it). It also bounds
	// _offset. Default DefaultMaxMatches.
	MaxMatches int
	Logger     *slog.Logger
}

func (s *Service) maxMatches() int {
	if s.MaxMatches > 0 {
		return s.MaxMatches
	}
	return DefaultMaxMatches
}

func (s *Service) root(c echo.Context) string {
	return publicurl.Config{PublicURL: s.PublicURL, AllowedHosts: s.AllowedHosts}.Root(c.Scheme(), c.Request())
}

func (s *Service) dicomweb() string {
	if s.DICOMwebBase == "" {
		return "/dicom-web"
	}
	return "/" + strings.Trim(s.DICOMwebBase, "/")
}

// Register adds the FHIR routes to e.
func (s *Service) Register(e *echo.Echo) {
	e.GET("/fhir/metadata", s.metadata)
	e.GET("/fhir/ImagingStudy", s.search)
	e.GET("/fhir/ImagingStudy/:id", s.read)
	e.GET("/fhir/Endpoint/:id", s.endpoint)
	e.GET("/fhir/Patient/:id", s.readPatient)
}

// write sends a FHIR resource.
func write(c echo.Context, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.Blob(code, MediaType+"; charset=utf-8", b)
}

// outcome answers an error as an OperationOutcome.
func outcome(c echo.Context, status int, code, text string) error {
	return write(c, status, OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{{Severity: "error", Code: code, Diagnostics: text}}})
}

// acceptable reports whether the client takes JSON (FHIR XML is not offered).
func acceptable(c echo.Context) bool {
	if f := c.QueryParam("_format"); f != "" {
		return strings.Contains(f, "json")
	}
	a := c.Request().Header.Get("Accept")
	return a == "" || strings.Contains(a, "json") || strings.Contains(a, "*/*")
}

func (s *Service) endpointResource(c echo.Context) Endpoint {
	return Endpoint{
		ResourceType: "Endpoint", ID: EndpointID, Status: "active",
		ConnectionType:  Coding{System: SystemConnection, Code: "dicom-wado-rs"},
		Name:            "Lumen DICOMweb (WADO-RS, QIDO-RS, STOW-RS)",
		PayloadType:     []CodeableConcept{{Coding: []Coding{{System: "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", Code: "any"}}, Text: "DICOM"}},
		PayloadMimeType: []string{"application/dicom", "application/dicom+json", "application/octet-stream", "image/jpeg", "image/png"},
		Address:         s.root(c) + s.dicomweb(),
	}
}

func (s *Service) endpoint(c echo.Context) error {
	if !acceptable(c) {
		return outcome(c, http.StatusNotAcceptable, "not-supported", "only application/fhir+json is offered")
	}
	if c.Param("id") != EndpointID {
		return outcome(c, http.StatusNotFound, "not-found", "Endpoint/"+c.Param("id")+" is not known; the DICOMweb endpoint is Endpoint/"+EndpointID)
	}
	return write(c, http.StatusOK, s.endpointResource(c))
}

// read answers GET /fhir/ImagingStudy/{id}.
func (s *Service) read(c echo.Context) error {
	if !acceptable(c) {
		return outcome(c, http.StatusNotAcceptable, "not-supported", "only application/fhir+json is offered")
	}
	id := c.Param("id")
	if !dcm.ValidUID(id) {
		return outcome(c, http.StatusNotFound, "not-found", "ImagingStudy ids are Study Instance UIDs")
	}
	ctx := c.Request().Context()
	if merged, err := s.scopeMerged(ctx); err != nil {
		return s.failed(c, err)
	} else if merged {
		return refuseMerged(c)
	}
	res, err := s.Index.Find(ctx, index.Query{Level: index.StudyLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: id}}})
	if err != nil {
		return s.failed(c, err)
	}
	if len(res.Studies) == 0 {
		return outcome(c, http.StatusNotFound, "not-found", "no ImagingStudy "+id)
	}
	is, err := s.imagingStudies(ctx, c, res.Studies)
	if err != nil {
		return s.failed(c, err)
	}
	return write(c, http.StatusOK, is[0])
}

func (s *Service) failed(c echo.Context, err error) error {
	if c.Request().Context().Err() != nil {
		return nil
	}
	if s.Logger != nil {
		s.Logger.Warn("fhir: request failed", "path", c.Path(), "err", err)
	}
	return outcome(c, http.StatusServiceUnavailable, "transient", "the archive could not answer; try again")
}

// issuerSystem is the identifier system of an IssuerOfPatientID: an OID as urn:oid:, a
// URI as is, anything else as urn:lumen:issuer:<issuer>.
func issuerSystem(issuer string) string {
	switch {
	case issuer == "":
		return ""
	case dcm.ValidUID(issuer):
		return "urn:oid:" + issuer
	case strings.Contains(issuer, ":"):
		return issuer
	}
	return "urn:lumen:issuer:" + url.PathEscape(issuer)
}

// systemIssuer inverts issuerSystem.
func systemIssuer(system string) string {
	switch {
	case strings.HasPrefix(system, "urn:oid:"):
		return strings.TrimPrefix(system, "urn:oid:")
	case strings.HasPrefix(system, "urn:lumen:issuer:"):
		v, _ := url.PathUnescape(strings.TrimPrefix(system, "urn:lumen:issuer:"))
		return v
	}
	return system
}

var fhirID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// dateTime turns a DICOM date and time into a FHIR date or dateTime.
func (s *Service) dateTime(date, tm string) string {
	if len(date) != 8 {
		return ""
	}
	d := date[:4] + "-" + date[4:6] + "-" + date[6:]
	t, _, _ := strings.Cut(tm, ".")
	if len(t) < 4 {
		return d
	}
	for len(t) < 6 {
		t += "0"
	}
	loc := s.Location
	if loc == nil {
		loc = time.Local
	}
	v, err := time.ParseInLocation("20060102150405", date+t[:6], loc)
	if err != nil {
		return d
	}
	return v.Format(time.RFC3339)
}

// imagingStudies builds the resources of studies, with their series and instances.
func (s *Service) imagingStudies(ctx context.Context, c echo.Context, studies []index.Study) ([]ImagingStudy, error) {
	out := make([]ImagingStudy, 0, len(studies))
	if len(studies) == 0 {
		return out, nil
	}
	// One query for the instances of the whole page (a UID list match), grouped by study;
	// the index orders them by study, then series, then instance.
	uids := make([]string, len(studies))
	for i := range studies {
		uids[i] = studies[i].StudyInstanceUID
	}
	res, err := s.Index.Find(ctx, index.Query{Level: index.ImageLevel, Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Value: strings.Join(uids, "\\")}}})
	if err != nil {
		return nil, err
	}
	instances := make(map[string][]*index.Instance, len(studies))
	for i := range res.Instances {
		in := &res.Instances[i]
		instances[in.StudyInstanceUID] = append(instances[in.StudyInstanceUID], in)
	}
	for i := range studies {
		st := &studies[i]
		is := ImagingStudy{
			ResourceType: "ImagingStudy", ID: st.StudyInstanceUID, Status: "available",
			Identifier:        []Identifier{{Use: "official", System: SystemDICOMUID, Value: "urn:oid:" + st.StudyInstanceUID}},
			Started:           s.dateTime(st.StudyDate, st.StudyTime),
			NumberOfSeries:    st.NumberOfStudyRelatedSeries,
			NumberOfInstances: st.NumberOfStudyRelatedInstances,
			Description:       st.StudyDescription,
			Endpoint:          []Reference{{Reference: "Endpoint/" + EndpointID}},
		}
		if !st.UpdatedAt.IsZero() {
			is.Meta = &Meta{LastUpdated: st.UpdatedAt.UTC().Format(time.RFC3339)}
		}
		if st.AccessionNumber != "" {
			is.Identifier = append(is.Identifier, Identifier{Use: "usual", Type: &CodeableConcept{Coding: []Coding{{System: SystemV2_0203, Code: "ACSN"}}}, Value: st.AccessionNumber})
		}
		for _, m := range st.ModalitiesInStudy {
			is.Modality = append(is.Modality, Coding{System: SystemDCM, Code: m})
		}
		is.Subject = subjectOf(&st.Patient)
		if st.ReferringPhysicianName != "" {
			is.Referrer = &Reference{Display: personDisplay(st.ReferringPhysicianName)}
		}
		var cur *StudySeries
		for _, in := range instances[st.StudyInstanceUID] {
			if cur == nil || cur.UID != in.SeriesInstanceUID {
				is.Series = append(is.Series, StudySeries{UID: in.SeriesInstanceUID, Number: in.SeriesNumber,
					Modality: Coding{System: SystemDCM, Code: in.Modality}, Description: in.SeriesDescription,
					NumberOfInstances: in.NumberOfSeriesRelatedInstances, Started: s.dateTime(in.SeriesDate, in.SeriesTime)})
				cur = &is.Series[len(is.Series)-1]
				if in.BodyPartExamined != "" {
					cur.BodySite = &Coding{Display: in.BodyPartExamined}
				}
			}
			cur.Instance = append(cur.Instance, StudyInstance{UID: in.SOPInstanceUID, SOPClass: Coding{System: SystemRFC3986, Code: "urn:oid:" + in.SOPClassUID}, Number: in.InstanceNumber})
		}
		out = append(out, is)
	}
	return out, nil
}

// search answers GET /fhir/ImagingStudy?...
func (s *Service) search(c echo.Context) error {
	if !acceptable(c) {
		return outcome(c, http.StatusNotAcceptable, "not-supported", "only application/fhir+json is offered")
	}
	q, serr := s.readSearch(c.Request().URL.Query())
	if serr != nil {
		return outcome(c, serr.status, serr.code, serr.text)
	}
	// Every parameter is a condition of the index query: the index pages, sorts and
	// counts (up to maxMatches), so a search reads its page and nothing more.
	ctx := c.Request().Context()
	if merged, err := s.scopeMerged(ctx); err != nil {
		return s.failed(c, err)
	} else if merged {
		return refuseMerged(c)
	}
	// A search for a patient record merged away matches nothing (its studies are the
	// survivor's); the bundle says so in an outcome entry, naming the survivor to an
	// unscoped caller.
	var mergedNote *OperationOutcome
	if q.patient != nil && !q.noPatient {
		survivor, merged, err := s.resolve(ctx, *q.patient)
		if err != nil {
			return s.failed(c, err)
		}
		if merged {
			text := "the patient record searched for was merged into another one"
			if len(index.Scopes(ctx)) == 0 {
				text = "patient " + q.patient.ID + " (" + orNone(issuerSystem(q.patient.Issuer)) + ") was merged into patient " + survivor.ID +
					" (" + orNone(issuerSystem(survivor.Issuer)) + "); its studies are found under that patient"
			}
			mergedNote = &OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{{Severity: "warning", Code: "informational", Diagnostics: text}}}
		}
	}
	if q.patient != nil {
		// The pair (ID, issuer) identifies the patient, exactly.
		ctx = index.WithScope(ctx, index.Scope{Patient: q.patient})
	}
	res := &index.Result{}
	if !q.noPatient {
		var err error
		if res, err = s.Index.Find(ctx, q.indexQuery()); err != nil {
			return s.failed(c, err)
		}
	}
	if res.Total > q.maxMatches {
		return outcome(c, http.StatusBadRequest, "too-costly", fmt.Sprintf("more than %d studies match; narrow the search with patient, identifier, started or modality", q.maxMatches))
	}
	b := Bundle{ResourceType: "Bundle", Type: "searchset", Total: res.Total}
	self := s.root(c) + "/fhir/ImagingStudy"
	b.Link = append(b.Link, BundleLink{Relation: "self", URL: self + "?" + c.Request().URL.RawQuery})
	if q.count > 0 && q.offset+q.count < res.Total {
		nq := c.Request().URL.Query()
		nq.Set("_offset", strconv.Itoa(q.offset+q.count))
		nq.Set("_count", strconv.Itoa(q.count))
		b.Link = append(b.Link, BundleLink{Relation: "next", URL: self + "?" + nq.Encode()})
	}
	list, err := s.imagingStudies(ctx, c, res.Studies)
	if err != nil {
		return s.failed(c, err)
	}
	for _, is := range list {
		b.Entry = append(b.Entry, BundleEntry{FullURL: self + "/" + is.ID, Resource: is, Search: &EntrySearch{Mode: "match"}})
	}
	if mergedNote != nil {
		b.Entry = append(b.Entry, BundleEntry{Resource: mergedNote, Search: &EntrySearch{Mode: "outcome"}})
	}
	if q.include && len(list) > 0 {
		b.Entry = append(b.Entry, BundleEntry{FullURL: s.root(c) + "/fhir/Endpoint/" + EndpointID, Resource: s.endpointResource(c), Search: &EntrySearch{Mode: "include"}})
	}
	return write(c, http.StatusOK, b)
}

// searchQuery is an ImagingStudy search as its parameters say.
type searchQuery struct {
	maxMatches int
	filters    []index.Filter
	patient    *index.PatientKey
	noPatient  bool // two different patients: nothing matches
	uids       []string
	accessions []string
	count      int
	offset     int
	ascending  bool
	include    bool
}

// searchError is a parameter refused, answered with an OperationOutcome.
type searchError struct {
	status     int
	code, text string
}

// invalid refuses a parameter's value.
func invalid(text string) *searchError {
	return &searchError{http.StatusBadRequest, "invalid", text}
}

// unsupported refuses a parameter, or a value, Lumen does not offer.
func unsupported(text string) *searchError {
	return &searchError{http.StatusBadRequest, "not-supported", text}
}

// searchParams are the search parameters Lumen supports, each with its reader of one
// value (nil: accepted, read elsewhere); any other parameter is refused. A repeated
// parameter is read once per value, in order: the conditions of started and modality
// add up, identifiers make one list, a second patient that differs matches nothing, and
// the last _count, _offset and _sort count.
var searchParams = map[string]func(q *searchQuery, key, v string) *searchError{
	"patient":            readPatientReference,
	"subject":            readPatientReference,
	"subject:identifier": readPatientIdentifier,
	"patient:identifier": readPatientIdentifier,
	"identifier":         readIdentifier,
	"started":            readStarted,
	"modality":           readModality,
	"_include":           readInclude,
	"_count":             readCount,
	"_offset":            readOffset,
	"_sort":              readSort,
	"_format":            nil, // acceptable
}

// readSearch reads the search's parameters by the table searchParams.
func (s *Service) readSearch(params url.Values) (*searchQuery, *searchError) {
	q := &searchQuery{maxMatches: s.maxMatches(), count: DefaultCount}
	for key, vals := range params {
		read, known := searchParams[key]
		if !known {
			return nil, unsupported("search parameter " + key + " is not supported: patient, subject, subject:identifier, identifier, started, modality, _include, _count, _offset, _sort")
		}
		for _, v := range vals {
			if read == nil {
				continue
			}
			if serr := read(q, key, v); serr != nil {
				return nil, serr
			}
		}
	}
	return q, nil
}

// indexQuery is the index query of the search.
func (q *searchQuery) indexQuery() index.Query {
	filters := q.filters
	if len(q.uids) > 0 {
		filters = append(filters, index.Filter{Tag: dcm.TagStudyInstanceUID, Values: q.uids})
	}
	if len(q.accessions) > 0 {
		filters = append(filters, index.Filter{Tag: dcm.TagAccessionNumber, Values: q.accessions})
	}
	return index.Query{Level: index.StudyLevel, Filters: filters, Reverse: q.ascending,
		Limit: q.count, Offset: q.offset, CountOnly: q.count == 0, Total: true, MaxTotal: q.maxMatches}
}

// setPatient limits the search to a patient; a second, different one matches nothing.
func (q *searchQuery) setPatient(p index.PatientKey) {
	if q.patient != nil && *q.patient != p {
		q.noPatient = true
	}
	q.patient = &p
}

// token splits a FHIR token value, [system|]code.
func token(v string) (system, code string) {
	system, code, ok := strings.Cut(v, "|")
	if !ok {
		return "", v
	}
	return system, code
}

func readPatientReference(q *searchQuery, key, v string) *searchError {
	id := strings.TrimPrefix(v, "Patient/")
	if strings.Contains(id, "/") || !valid.PatientID(id) {
		return invalid(key + " must be a Patient reference (Patient/<id>); for a patient with an issuer use subject:identifier=<system>|<value>")
	}
	q.setPatient(index.PatientKey{ID: id})
	return nil
}

func readPatientIdentifier(q *searchQuery, key, v string) *searchError {
	sys, val := token(v)
	if !valid.PatientID(val) || !valid.Text(sys) {
		return invalid(key + " needs a value: [system|]value")
	}
	q.setPatient(index.PatientKey{ID: val, Issuer: systemIssuer(sys)})
	return nil
}

// readIdentifier reads a study's identifier: its Study Instance UID
// (urn:dicom:uid|urn:oid:<uid>, or urn:oid:<uid>) or its accession number.
func readIdentifier(q *searchQuery, _, v string) *searchError {
	if len(q.uids)+len(q.accessions) >= MaxIdentifiers {
		return &searchError{http.StatusBadRequest, "too-costly", fmt.Sprintf("at most %d identifier values in one search", MaxIdentifiers)}
	}
	switch sys, val := token(v); {
	case sys == SystemDICOMUID || strings.HasPrefix(val, "urn:oid:"):
		u := strings.TrimPrefix(val, "urn:oid:")
		if !dcm.ValidUID(u) {
			return invalid("identifier " + v + " is not a DICOM UID")
		}
		q.uids = append(q.uids, u)
	case !valid.Accession(val):
		return invalid("identifier " + v + " is neither urn:dicom:uid|urn:oid:<uid> nor an accession number")
	default:
		q.accessions = append(q.accessions, val)
	}
	return nil
}

func readStarted(q *searchQuery, _, v string) *searchError {
	f, err := dateFilter(v)
	if err != nil {
		return invalid(err.Error())
	}
	q.filters = append(q.filters, f...)
	return nil
}

// readModality reads comma-separated alternatives, each a DICOM modality code.
func readModality(q *searchQuery, _, v string) *searchError {
	var codes []string
	for _, m := range strings.Split(v, ",") {
		sys, code := token(m)
		if sys != "" && sys != SystemDCM || !valid.Modality(code) {
			return invalid("modality " + m + " is not a DICOM modality code (" + SystemDCM + "|CT)")
		}
		codes = append(codes, code)
	}
	q.filters = append(q.filters, index.Filter{Tag: dcm.TagModalitiesInStudy, Value: strings.Join(codes, `\`)})
	return nil
}

func readInclude(q *searchQuery, _, v string) *searchError {
	if v != "ImagingStudy:endpoint" {
		return unsupported("_include supports ImagingStudy:endpoint only")
	}
	q.include = true
	return nil
}

func readCount(q *searchQuery, _, v string) *searchError {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > MaxCount {
		return invalid(fmt.Sprintf("_count must be a whole number from 0 to %d", MaxCount))
	}
	q.count = n
	return nil
}

// readOffset reads _offset, bounded so that offset+count cannot overflow: past the
// most studies a search may match there is nothing to page to.
func readOffset(q *searchQuery, _, v string) *searchError {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > q.maxMatches {
		return invalid(fmt.Sprintf("_offset must be a whole number from 0 to %d", q.maxMatches))
	}
	q.offset = n
	return nil
}

func readSort(q *searchQuery, _, v string) *searchError {
	switch v {
	case "started":
		q.ascending = true
	case "-started":
		q.ascending = false
	default:
		return unsupported("_sort supports started and -started")
	}
	return nil
}

var fhirDate = regexp.MustCompile(`^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?$`)

// dateFilter turns one started=<prefix><date> parameter into a StudyDate range, at
// day precision: ge2024-01-01, lt2024-02, eq2024, ...
func dateFilter(v string) ([]index.Filter, error) {
	m := fhirDate.FindStringSubmatch(v)
	if m == nil {
		return nil, fmt.Errorf("started %q is not a FHIR date with an optional prefix (eq, gt, ge, lt, le)", v)
	}
	prefix := m[1]
	if prefix == "" {
		prefix = "eq"
	}
	y, _ := strconv.Atoi(m[2])
	first := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(1, 0, -1)
	if m[3] != "" {
		mo, _ := strconv.Atoi(m[3])
		first = time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC)
		last = first.AddDate(0, 1, -1)
		if m[4] != "" {
			d, _ := strconv.Atoi(m[4])
			first = time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC)
			last = first
		}
	}
	da := func(t time.Time) string { return t.Format("20060102") }
	var r string
	switch prefix {
	case "eq":
		r = da(first) + "-" + da(last)
	case "ge":
		r = da(first) + "-"
	case "gt", "sa":
		r = da(last.AddDate(0, 0, 1)) + "-"
	case "le":
		r = "-" + da(last)
	case "lt", "eb":
		r = "-" + da(first.AddDate(0, 0, -1))
	default:
		return nil, fmt.Errorf("started: the prefix %s is not supported (eq, gt, ge, lt, le, sa, eb)", prefix)
	}
	return []index.Filter{{Tag: dcm.TagStudyDate, Value: r}}, nil
}

// metadata answers GET /fhir/metadata with the CapabilityStatement.
func (s *Service) metadata(c echo.Context) error {
	param := func(name, typ, doc string) map[string]string {
		return map[string]string{"name": name, "type": typ, "documentation": doc}
	}
	cs := map[string]any{
		"resourceType": "CapabilityStatement",
		"status":       "active",
		"date":         "2026-11-22",
		"kind":         "instance",
		"software":     map[string]string{"name": "Lumen"},
		"implementation": map[string]string{
			"description": "Lumen DICOM archive: ImagingStudy over its index",
			"url":         s.root(c) + "/fhir",
		},
		"fhirVersion": "4.0.1",
		"format":      []string{"json", MediaType},
		"rest": []map[string]any{{
			"mode": "server",
			"resource": []map[string]any{
				{
					"type":          "ImagingStudy",
					"interaction":   []map[string]string{{"code": "read"}, {"code": "search-type"}},
					"searchInclude": []string{"ImagingStudy:endpoint"},
					"searchParam": []map[string]string{
						param("patient", "reference", "Patient/<PatientID> (patients without an issuer)"),
						param("subject", "reference", "as patient"),
						param("subject:identifier", "token", "<issuer system>|<PatientID>: the patient by (PatientID, IssuerOfPatientID)"),
						param("identifier", "token", "urn:dicom:uid|urn:oid:<Study Instance UID>, or an accession number"),
						param("started", "date", "StudyDate at day precision; prefixes eq, gt, ge, lt, le, sa, eb"),
						param("modality", "token", SystemDCM+"|<code>, comma-separated alternatives"),
						param("_count", "number", fmt.Sprintf("page size (default %d, at most %d)", DefaultCount, MaxCount)),
						param("_offset", "number", fmt.Sprintf("first result of the page (at most %d)", s.maxMatches())),
						param("_sort", "string", "started or -started (default)"),
					},
				},
				{"type": "Endpoint", "interaction": []map[string]string{{"code": "read"}}},
				{"type": "Patient", "interaction": []map[string]string{{"code": "read"}},
					"documentation": "Patient/<PatientID> for patients without an issuer: the demographics of the archive's patient record; a record merged into another one is inactive with a replaced-by link"},
			},
		}},
	}
	return write(c, http.StatusOK, cs)
}

// personDisplay renders a DICOM person name (UTF-8, PN form) for people: the components
// separated by spaces, the ideographic and phonetic component groups after the first in
// parentheses ("Hong^Gildong=洪^吉洞=홍^길동" is "Hong Gildong (洪 吉洞, 홍 길동)").
func personDisplay(pn string) string {
	var groups []string
	for _, g := range strings.Split(pn, "=") {
		if g = strings.Join(strings.Fields(strings.ReplaceAll(g, "^", " ")), " "); g != "" {
			groups = append(groups, g)
		}
	}
	switch len(groups) {
	case 0:
		return ""
	case 1:
		return groups[0]
	}
	return groups[0] + " (" + strings.Join(groups[1:], ", ") + ")"
}

// orNone is v, or "no issuer" when v is empty.
func orNone(v string) string {
	if v == "" {
		return "no issuer"
	}
	return v
}
