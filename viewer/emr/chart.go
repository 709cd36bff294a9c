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
	modality  = regexp.MustCompile(`^[A-Z0-9_]{1,16}$`)
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
	if mod != "" && !modality.MatchString(mod) {
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

	ctx := c.Request().Context()
	filters := []index.Filter{{Tag: dcm.TagPatientID, Value: pid}}
	if from != "" || to != "" {
		filters = append(filters, index.Filter{Tag: dcm.TagStudyDate, Value: from + "-" + to})
	}
	if mod != "" {
		filters = append(filters, index.Filter{Tag: dcm.TagModalitiesInStudy, Value: mod})
	}
	res, err := s.Index.Find(ctx, index.Query{Level: index.StudyLevel, Filters: filters})
	if err != nil {
		return nil, err
	}
	// Body parts live on series: read them only when a rule can use them.
	bodyParts := map[string][]string{}
	if len(res.Studies) > 0 && len(s.ServiceLines.withDefaults().BodyParts) > 0 {
		series, err := s.Index.Find(ctx, index.Query{Level: index.SeriesLevel, Filters: []index.Filter{{Tag: dcm.TagPatientID, Value: pid}}})
		if err != nil {
			return nil, err
		}
		for _, se := range series.Series {
			if se.BodyPartExamined != "" && se.PatientID == pid && se.IssuerOfPatientID == issuer {
				bodyParts[se.StudyInstanceUID] = append(bodyParts[se.StudyInstanceUID], se.BodyPartExamined)
			}
		}
	}
	ch := &Chart{PatientID: pid, Issuer: issuer, Offset: offset, Limit: limit, Studies: []ChartStudy{},
		ServiceLineCounts: map[string]int{Radiology: 0, Cardiology: 0}}
	root := s.root(c)
	token := linkToken(c)
	for i := range res.Studies {
		st := &res.Studies[i]
		// The pair identifies the patient: exact, whatever matching rules did (a wildcard
		// in the ID, or an empty issuer, which DICOM matching treats as "any").
		if st.PatientID != pid || st.IssuerOfPatientID != issuer {
			continue
		}
		line := s.ServiceLines.Classify(st, bodyParts[st.StudyInstanceUID])
		ch.ServiceLineCounts[line]++
		if service != "" && line != service {
			continue
		}
		ch.Total++
		if ch.Total <= offset || len(ch.Studies) >= limit {
			continue
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
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, ch)
}
