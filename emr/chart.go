package emr

import (
	"errors"
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

// ChartStudy is one study of the chart API.
type ChartStudy struct {
	StudyInstanceUID  string   `json:"studyInstanceUID"`
	Date              string   `json:"date,omitempty"` // YYYY-MM-DD
	Time              string   `json:"time,omitempty"` // HH:MM:SS
	Description       string   `json:"description,omitempty"`
	Modalities        []string `json:"modalities"`
	AccessionNumber   string   `json:"accessionNumber,omitempty"`
	ServiceLine       string   `json:"serviceLine"`
	Kinds             []string `json:"kinds"` // images, cine, ecg, report
	NumberOfSeries    int      `json:"numberOfSeries"`
	NumberOfInstances int      `json:"numberOfInstances"`
	ThumbnailURL      string   `json:"thumbnailUrl"`
	ViewerURL         string   `json:"viewerUrl"`
	IIDURL            string   `json:"iidUrl"`
	FHIRReference     string   `json:"fhirReference"`
	FHIRURL           string   `json:"fhirUrl"`
}

// Chart is the answer of the chart API.
type Chart struct {
	PatientID string `json:"patientID"`
	Issuer    string `json:"issuerOfPatientID"`
	// PatientName is the patient's name as the index's patient record has it (corrected
	// by HL7 ADT or the admin API, else as the newest object gave it), in UTF-8 and the
	// DICOM PN form ("Yamada^Tarou=山田^太郎=やまだ^たろう": family^given..., the
	// alphabetic, ideographic and phonetic groups separated by "="), or "" when the page
	// holds no study. PatientBirthDate (YYYYMMDD) and PatientSex come from the same
	// record.
	PatientName      string `json:"patientName,omitempty"`
	PatientBirthDate string `json:"patientBirthDate,omitempty"`
	PatientSex       string `json:"patientSex,omitempty"`
	// MergedInto is set only in the answer (410 Gone) for a patient record that was
	// merged into another one: the survivor, under whose identifier the studies are
	// filed now. Notice says so in a sentence.
	MergedInto *PatientRef `json:"mergedInto,omitempty"`
	Notice     string      `json:"notice,omitempty"`
	// Total counts the studies that match the filters; Studies is the page of them.
	Total   int          `json:"total"`
	Offset  int          `json:"offset"`
	Limit   int          `json:"limit"`
	Studies []ChartStudy `json:"studies"`
	// ServiceLineCounts counts the matching studies of each service line before the
	// service filter (the widget's tab labels).
	ServiceLineCounts map[string]int `json:"serviceLineCounts"`
}

var (
	isoDate   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	dicomDate = regexp.MustCompile(`^\d{8}$`)
)

// dateParam reads a date query parameter (YYYY-MM-DD or YYYYMMDD) as a DICOM DA.
func dateParam(c echo.Context, name string) (string, error) {
	v := c.QueryParam(name)
	switch {
	case v == "":
		return "", nil
	case isoDate.MatchString(v):
		return strings.ReplaceAll(v, "-", ""), nil
	case dicomDate.MatchString(v):
		return v, nil
	}
	return "", echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s=%q is not a date (YYYY-MM-DD)", name, v))
}

func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("%s=%q: want a whole number from %d to %d", name, v, lo, hi))
	}
	return n, nil
}

// chart gathers the chart of the patient the request names, with its filters. For the
// widget, both service lines are listed (service only says which tab is open) and the
// default limit is MaxWidgetStudies.
func (s *Service) chart(c echo.Context, widget bool) (*Chart, error) {
	pid, issuer, err := patientParam(c)
	if err != nil {
		return nil, err
	}
	from, err := dateParam(c, "from")
	if err != nil {
		return nil, err
	}
	to, err := dateParam(c, "to")
	if err != nil {
		return nil, err
	}
	service := strings.ToLower(c.QueryParam("service"))
	if service != "" && service != Radiology && service != Cardiology {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "service must be radiology or cardiology")
	}
	mod := strings.ToUpper(c.QueryParam("modality"))
	if mod != "" && !valid.Modality(mod) {
		return nil, echo.NewHTTPError(http.StatusBadRequest, "modality must be a modality code such as CT or XA")
	}
	if widget {
		service = ""
	}
	def := DefaultChartLimit
	if widget {
		def = MaxWidgetStudies
	}
	limit, err := intParam(c, "limit", def, 1, MaxChartLimit)
	if err != nil {
		return nil, err
	}
	offset, err := intParam(c, "offset", 0, 0, 1<<30)
	if err != nil {
		return nil, err
	}

	// A record merged away has no studies any more; its chart says so instead of
	// listing none, and is never widened to the survivor's studies.
	key := index.PatientKey{ID: pid, Issuer: issuer}
	if err := s.checkMerged(c.Request().Context(), key); err != nil {
		return nil, err
	}
	// The pair (ID, issuer) identifies the patient exactly, in every index query. The
	// index pages and counts: the chart never reads more than its page of studies.
	ctx := index.WithScope(c.Request().Context(), index.Scope{Patient: &key})
	var filters []index.Filter
	if from != "" || to != "" {
		filters = append(filters, index.Filter{Tag: dcm.TagStudyDate, Value: from + "-" + to})
	}
	if mod != "" {
		filters = append(filters, index.Filter{Tag: dcm.TagModalitiesInStudy, Value: mod})
	}
	cardiology := s.ServiceLines.class()
	lineFilter := func(line string) *index.ClassFilter {
		switch line {
		case Cardiology:
			return &index.ClassFilter{Class: cardiology}
		case Radiology:
			return &index.ClassFilter{Class: cardiology, Exclude: true}
		}
		return nil
	}
	page, err := s.Index.Find(ctx, index.Query{Level: index.StudyLevel, Filters: filters, Class: lineFilter(service),
		Limit: limit, Offset: offset, Total: true})
	if err != nil {
		return nil, err
	}
	// The tab counts: the page's total and the count of the other line (of cardiology
	// when no line is chosen).
	other := Cardiology
	if service == Cardiology {
		other = Radiology
	}
	count, err := s.Index.Find(ctx, index.Query{Level: index.StudyLevel, Filters: filters, Class: lineFilter(other), Total: true, CountOnly: true})
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	if service == "" {
		counts[Cardiology], counts[Radiology] = count.Total, page.Total-count.Total
	} else {
		counts[service], counts[other] = page.Total, count.Total
	}
	// The line of each study of the page: the one chosen, else asked of the index for
	// the page's studies.
	lines := map[string]string{}
	if service == "" && len(page.Studies) > 0 && counts[Cardiology] > 0 {
		uids := make([]string, len(page.Studies))
		for i := range page.Studies {
			uids[i] = page.Studies[i].StudyInstanceUID
		}
		card, err := s.Index.Find(ctx, index.Query{Level: index.StudyLevel, Class: lineFilter(Cardiology),
			Filters: []index.Filter{{Tag: dcm.TagStudyInstanceUID, Values: uids}}})
		if err != nil {
			return nil, err
		}
		for _, st := range card.Studies {
			lines[st.StudyInstanceUID] = Cardiology
		}
	}
	ch := &Chart{PatientID: pid, Issuer: issuer, Total: page.Total, Offset: offset, Limit: limit, Studies: []ChartStudy{},
		ServiceLineCounts: map[string]int{Radiology: max(counts[Radiology], 0), Cardiology: counts[Cardiology]}}
	if len(page.Studies) > 0 {
		p := &page.Studies[0].Patient
		ch.PatientName, ch.PatientBirthDate, ch.PatientSex = p.PatientName, p.PatientBirthDate, p.PatientSex
	}
	root := s.root(c)
	token := linkToken(c)
	for i := range page.Studies {
		st := &page.Studies[i]
		line := service
		if line == "" {
			line = Radiology
			if l, ok := lines[st.StudyInstanceUID]; ok {
				line = l
			}
		}
		ch.Studies = append(ch.Studies, s.chartStudy(root, token, st, line))
	}
	return ch, nil
}

// withToken appends the link token the request came with, if any.
func withToken(u, token string) string {
	if token == "" {
		return u
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "token=" + url.QueryEscape(token)
}

func (s *Service) chartStudy(root, token string, st *index.Study, line string) ChartStudy {
	cs := ChartStudy{
		StudyInstanceUID: st.StudyInstanceUID, Description: st.StudyDescription, Modalities: st.ModalitiesInStudy,
		AccessionNumber: st.AccessionNumber, ServiceLine: line, Kinds: kinds(st),
		NumberOfSeries: st.NumberOfStudyRelatedSeries, NumberOfInstances: st.NumberOfStudyRelatedInstances,
		ThumbnailURL:  withToken(root+s.dicomweb()+"/studies/"+st.StudyInstanceUID+"/thumbnail", token),
		ViewerURL:     withToken(root+"/viewer/studies/"+st.StudyInstanceUID, token),
		IIDURL:        root + "/IHEInvokeImageDisplay?requestType=STUDY&studyUID=" + st.StudyInstanceUID,
		FHIRReference: "ImagingStudy/" + st.StudyInstanceUID,
		FHIRURL:       root + "/fhir/ImagingStudy/" + st.StudyInstanceUID,
	}
	if cs.Modalities == nil {
		cs.Modalities = []string{}
	}
	if d := st.StudyDate; len(d) == 8 {
		cs.Date = d[:4] + "-" + d[4:6] + "-" + d[6:]
	}
	if t := st.StudyTime; len(t) >= 4 {
		cs.Time = t[:2] + ":" + t[2:4]
		if len(t) >= 6 {
			cs.Time += ":" + t[4:6]
		} else {
			cs.Time += ":00"
		}
	}
	return cs
}

// chartStudies answers GET /emr/v1/patients/{patientID}/studies.
func (s *Service) chartStudies(c echo.Context) error {
	ch, err := s.chart(c, false)
	var me *mergedError
	if errors.As(err, &me) {
		if me.survivor == nil {
			return mergedJSON(c, me)
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.JSON(me.status(), &Chart{PatientID: me.patient.ID, Issuer: me.patient.Issuer, Studies: []ChartStudy{},
			ServiceLineCounts: map[string]int{Radiology: 0, Cardiology: 0},
			MergedInto:        &PatientRef{PatientID: me.survivor.ID, Issuer: me.survivor.Issuer}, Notice: me.text()})
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, ch)
}
