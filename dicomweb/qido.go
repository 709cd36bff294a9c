package dicomweb

import (
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/index"
)

// Return attributes per level (PS3.18 Table 10.6.3-3, -4, -5), beyond RetrieveURL and
// InstanceAvailability which every result carries.
var (
	studyTags = []dcm.Tag{dcm.TagStudyDate, dcm.TagStudyTime, dcm.TagAccessionNumber, dcm.TagModalitiesInStudy,
		dcm.TagReferringPhysicianName, dcm.TagPatientName, dcm.TagPatientID, dcm.TagPatientBirthDate, dcm.TagPatientSex,
		dcm.TagStudyInstanceUID, dcm.TagStudyID, dcm.TagStudyDescription, dcm.TagNumberOfStudyRelatedSeries,
		dcm.TagNumberOfStudyRelatedInstances}
	studyAllTags = []dcm.Tag{dcm.TagIssuerOfPatientID, dcm.TagSOPClassesInStudy, dcm.TagNumberOfPatientRelatedStudies}
	seriesTags   = []dcm.Tag{dcm.TagModality, dcm.TagSeriesDescription, dcm.TagSeriesInstanceUID, dcm.TagSeriesNumber, dcm.TagNumberOfSeriesRelatedInstances, dcm.TagSeriesDate, dcm.TagSeriesTime, dcm.TagBodyPartExamined}
	instanceTags = []dcm.Tag{dcm.TagSOPClassUID, dcm.TagSOPInstanceUID, dcm.TagInstanceNumber, dcm.TagRows, dcm.TagColumns, dcm.TagBitsAllocated, dcm.TagNumberOfFrames}
)

// addWarning adds a Warning: 299 header (RFC 7234 5.5) with a reason for the client.
func addWarning(c echo.Context, text string) {
	c.Response().Header().Add("Warning", `299 lumen "`+strings.ReplaceAll(text, `"`, `'`)+`"`)
}

// qidoRequest is a parsed QIDO-RS query.
type qidoRequest struct {
	study, series string // UIDs of the path
	q             index.Query
	limit         int
	include       []dcm.Tag
	all           bool
	warnings      []string
}

// queryValues counts the values of a matching key's value as the index will match
// them: the pieces between backslashes and commas (UID lists, alternatives), and for
// person names the words between spaces, carets and equals signs (fuzzy matching); at
// least one.
func queryValues(vr, v string) int {
	n := 0
	for _, f := range strings.FieldsFunc(v, func(r rune) bool {
		return r == '\\' || r == ',' || vr == "PN" && (r == ' ' || r == '^' || r == '=')
	}) {
		if strings.TrimSpace(f) != "" {
			n++
		}
	}
	return max(n, 1)
}

// checkQueryValue refuses a matching value the index cannot hold: text that is not
// UTF-8 or holds control characters (no DICOM value used for matching may), and IS
// values that are not integers from -2^31 to 2^31-1 (PS3.5 6.2).
func checkQueryValue(key, vr, v string) error {
	if !utf8.ValidString(v) {
		return echo.NewHTTPError(http.StatusBadRequest, "the value of "+key+" is not valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return echo.NewHTTPError(http.StatusBadRequest, "the value of "+key+" holds a control character")
		}
	}
	if vr == "IS" {
		for _, f := range strings.Split(v, "\\") {
			if f = strings.TrimSpace(f); f == "" || f == "*" {
				continue
			}
			if _, err := strconv.ParseInt(strings.TrimPrefix(f, "+"), 10, 32); err != nil {
				return echo.NewHTTPError(http.StatusBadRequest, key+" must be an integer string (IS) from -2147483648 to 2147483647")
			}
		}
	}
	return nil
}

func (s *Service) maxLimit() int {
	if s.MaxLimit > 0 {
		return s.MaxLimit
	}
	return DefaultMaxLimit
}

// parseQIDO reads the query parameters (PS3.18 8.3.4): matching keys by keyword or tag,
// includefield, fuzzymatching, limit and offset.
func (s *Service) parseQIDO(c echo.Context, level index.Level) (*qidoRequest, error) {
	study, series, _, err := uidParams(c)
	if err != nil {
		return nil, err
	}
	r := &qidoRequest{q: index.Query{Level: level}, limit: s.maxLimit(), study: study, series: series}
	if study != "" {
		r.q.Filters = append(r.q.Filters, index.Filter{Tag: dcm.TagStudyInstanceUID, Value: study})
	}
	if series != "" {
		r.q.Filters = append(r.q.Filters, index.Filter{Tag: dcm.TagSeriesInstanceUID, Value: series})
	}
	maxIncludes, maxValues := orDefault(s.MaxIncludeFields, DefaultMaxIncludeFields), orDefault(s.MaxQueryValues, DefaultMaxQueryValues)
	params := c.QueryParams()
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	values, includes := 0, 0
	for _, key := range keys {
		vals := params[key]
		switch strings.ToLower(key) {
		case "limit", "offset":
			n, err := strconv.Atoi(vals[len(vals)-1])
			if err != nil || n < 0 || (n == 0 && strings.EqualFold(key, "limit")) {
				return nil, echo.NewHTTPError(http.StatusBadRequest, key+" must be a positive integer")
			}
			if strings.EqualFold(key, "offset") {
				r.q.Offset = n
			} else if n > r.limit {
				r.warnings = append(r.warnings, "limit "+strconv.Itoa(n)+" exceeds the maximum; "+strconv.Itoa(r.limit)+" used")
			} else {
				r.limit = n
			}
		case "fuzzymatching":
			b, err := strconv.ParseBool(vals[len(vals)-1])
			if err != nil {
				return nil, echo.NewHTTPError(http.StatusBadRequest, "fuzzymatching must be true or false")
			}
			r.q.Fuzzy = b
		case "includefield":
			for _, v := range vals {
				for _, f := range strings.Split(v, ",") {
					f = strings.TrimSpace(f)
					if f == "" {
						continue
					}
					if includes++; includes > maxIncludes {
						return nil, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("includefield names more than %d attributes, the most this server takes in one query (dicomweb.max_include_fields)", maxIncludes))
					}
					if f == "all" {
						r.all = true
						continue
					}
					t, err := dcm.ParseTag(f)
					if err != nil {
						if strings.Contains(f, ".") {
							r.warnings = append(r.warnings, "includefield "+f+": nested attributes are not supported; ignored")
							continue
						}
						return nil, echo.NewHTTPError(http.StatusBadRequest, "includefield: unknown attribute "+strconv.Quote(f))
					}
					r.include = append(r.include, t)
				}
			}
		default:
			t, err := dcm.ParseTag(key)
			if err != nil {
				if strings.Contains(key, ".") {
					r.warnings = append(r.warnings, "matching on nested attribute "+key+" is not supported; ignored")
					continue
				}
				return nil, echo.NewHTTPError(http.StatusBadRequest, "unknown query parameter or attribute "+strconv.Quote(key))
			}
			v := strings.Join(vals, "\\")
			vr := dcm.DictVR(t)
			if vr == "UI" {
				v = strings.ReplaceAll(v, ",", "\\")
			}
			if err := checkQueryValue(key, vr, v); err != nil {
				return nil, err
			}
			if values += queryValues(vr, v); values > maxValues {
				return nil, echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("the matching keys hold more than %d values (UIDs, alternatives, name words), the most this server takes in one query (dicomweb.max_query_values)", maxValues))
			}
			r.q.Filters = append(r.q.Filters, index.Filter{Tag: t, Value: v})
			r.include = append(r.include, t)
		}
	}
	r.q.Limit = r.limit + 1
	return r, nil
}

func (s *Service) qido(level index.Level) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !acceptsJSON(c.Request().Header.Get("Accept")) {
			return echo.NewHTTPError(http.StatusNotAcceptable, "QIDO-RS answers application/dicom+json only")
		}
		r, err := s.parseQIDO(c, level)
		if err != nil {
			return err
		}
		study, series := r.study, r.series
		// The instances' stored metadata is read only when the answer needs an attribute
		// the index does not hold (includefield=all, or a non-indexed attribute).
		r.q.WithMetadata = level == index.ImageLevel && (r.all || !indexHolds(r.include) || !instanceTagsIndexed)
		res, err := s.Index.Find(c.Request().Context(), r.q)
		if err != nil {
			return err
		}
		for _, t := range res.Ignored {
			r.warnings = append(r.warnings, "matching on "+tagName(t)+" is not supported at this level; ignored")
		}
		tags := slices.Clone(r.include)
		switch level {
		case index.StudyLevel:
			tags = append(tags, studyTags...)
			if r.all {
				tags = append(tags, studyAllTags...)
			}
		case index.SeriesLevel:
			tags = append(tags, seriesTags...)
			tags = append(tags, dcm.TagStudyInstanceUID)
			if study == "" || r.all {
				tags = append(tags, studyTags...)
			}
			if r.all {
				tags = append(tags, studyAllTags...)
			}
		case index.ImageLevel:
			tags = append(tags, instanceTags...)
			tags = append(tags, dcm.TagStudyInstanceUID, dcm.TagSeriesInstanceUID)
			if series == "" || r.all {
				tags = append(tags, seriesTags...)
			}
			if study == "" || r.all {
				tags = append(tags, studyTags...)
			}
			if r.all {
				tags = append(tags, studyAllTags...)
			}
		}
		slices.Sort(tags)
		tags = slices.Compact(tags)
		recs := res.Records(level)
		if len(recs) > r.limit {
			recs = recs[:r.limit]
			r.warnings = append(r.warnings, "the results of this query have been truncated to "+strconv.Itoa(r.limit)+"; ask again with offset="+strconv.Itoa(r.q.Offset+r.limit)+" for more")
		}
		for _, w := range r.warnings {
			addWarning(c, w)
		}
		root := s.root(c)
		bp := answerBuffers.Get().(*[]byte)
		defer func() {
			if cap(*bp) <= maxPooledAnswer {
				answerBuffers.Put(bp)
			}
		}()
		buf := append((*bp)[:0], '[')
		for i, rec := range recs {
			if i > 0 {
				buf = append(buf, ',')
			}
			if out, ok := plainResult(buf, rec, tags, retrieveURL(root, rec)); ok {
				buf = out
				continue
			}
			obj, err := builtResult(rec, tags, root, r.all)
			if err != nil {
				return err
			}
			buf = append(buf, obj...)
		}
		buf = append(buf, ']')
		*bp = buf // grown, for the next answer
		return c.Blob(http.StatusOK, "application/dicom+json", buf)
	}
}

// answerBuffers holds the buffers QIDO-RS answers are written in (*[]byte), reused
// once an answer is sent: a page of 100 studies is about 80 KB.
var answerBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 64<<10)
	return &b
}}

// maxPooledAnswer bounds the buffers kept in answerBuffers: a rare large answer does
// not hold its memory afterwards.
const maxPooledAnswer = 1 << 20

// indexHolds reports whether the index record of an instance holds every tag.
// instanceTagsIndexed: the default instance attributes are all held by the index.
var instanceTagsIndexed = indexHolds(instanceTags)

func indexHolds(tags []dcm.Tag) bool {
	var rec index.Instance
	for _, t := range tags {
		if _, _, ok := rec.Attribute(t); !ok {
			return false
		}
	}
	return true
}

// acceptsJSON reports whether an Accept header admits application/dicom+json.
func acceptsJSON(h string) bool {
	for _, m := range parseAccept(h) {
		if m.accepts("application/dicom+json") || m.accepts("application/json") {
			return true
		}
	}
	return false
}

func tagName(t dcm.Tag) string {
	if k := t.Keyword(); k != "" {
		return k + " " + t.String()
	}
	return t.String()
}

// resultObject renders one QIDO-RS result: the tags the record holds, then (instances
// read WithMetadata) those found in the stored metadata, or with all every stored
// attribute (see mergeStored); RetrieveURL and InstanceAvailability always.
func resultObject(rec index.Record, tags []dcm.Tag, root string, all bool) ([]byte, error) {
	if js, ok := plainResult(nil, rec, tags, retrieveURL(root, rec)); ok {
		return js, nil
	}
	return builtResult(rec, tags, root, all)
}

// builtResult is resultObject through the record's data set (index.Answer).
func builtResult(rec index.Record, tags []dcm.Tag, root string, all bool) ([]byte, error) {
	ds, missing, err := index.Answer(rec, tags, nil)
	if err != nil {
		return nil, err
	}
	url := retrieveURL(root, rec)
	ds.Set(dcm.NewString(dcm.TagInstanceAvailability, "CS", "ONLINE"))
	ds.Set(dcm.NewString(dcm.TagRetrieveURL, "UR", url))
	js, _, err := ds.JSON(nil)
	if err != nil {
		return nil, err
	}
	in, ok := rec.(*index.Instance)
	if !ok || in.Metadata == nil || (len(missing) == 0 && !all) {
		return js, nil
	}
	return mergeStored(js, in.Metadata, url, missing, all)
}

// plainResult appends to dst the result resultObject makes of a record whose values
// dcm.AppendJSONMember writes straight (ASCII text, as most are) or, when a text value
// is beyond ASCII, dcm.AppendJSONMemberUTF8 with the Specific Character Set that
// index.Answer adds then (ISO_IR 192), without building its data set; tags are in
// ascending order without duplicates. ok is false, and dst unchanged, for a record it
// does not take (an instance whose stored metadata the answer reads, a value neither
// writes straight): resultObject builds that one.
func plainResult(dst []byte, rec index.Record, tags []dcm.Tag, url string) (out []byte, ok bool) {
	if in, isInstance := rec.(*index.Instance); isInstance && in.Metadata != nil {
		return dst, false
	}
	out, ok, beyond := plainMembers(dst, rec, tags, url, false)
	if !ok && beyond {
		out, ok, _ = plainMembers(dst, rec, tags, url, true)
	}
	if !ok {
		return dst, false
	}
	return out, true
}

// plainMembers is plainResult in the default repertoire or, utf8Set, in UTF-8. beyond
// reports a refusal of a text value beyond ASCII in the default repertoire, which UTF-8
// may take.
func plainMembers(dst []byte, rec index.Record, tags []dcm.Tag, url string, utf8Set bool) (out []byte, ok, beyond bool) {
	out = append(dst, '{')
	// The attributes in tag order, with SpecificCharacterSet (UTF-8 only),
	// InstanceAvailability and RetrieveURL in their places (they replace any the record
	// held).
	type extraMember struct {
		tag dcm.Tag
		vr  string
		v   []string
	}
	all := [3]extraMember{{dcm.TagSpecificCharacterSet, "CS", []string{"ISO_IR 192"}}, {dcm.TagInstanceAvailability, "CS", []string{"ONLINE"}}, {dcm.TagRetrieveURL, "UR", []string{url}}}
	extra := all[1:]
	appendMember := dcm.AppendJSONMember
	if utf8Set {
		extra, appendMember = all[:], dcm.AppendJSONMemberUTF8
	}
	first, next := true, 0
	member := func(t dcm.Tag, vr string, values []string) bool {
		if !first {
			out = append(out, ',')
		}
		first = false
		if t == dcm.TagSpecificCharacterSet { // what Dataset.JSON writes of it, whatever it holds
			out, ok = append(out, `"00080005":{"vr":"CS","Value":["ISO_IR 192"]}`...), true
			return true
		}
		out, ok = appendMember(out, t, vr, values)
		if !ok && !utf8Set && dcm.IsTextVR(vr) {
			for _, v := range values {
				beyond = beyond || !dcm.IsASCII(v)
			}
		}
		return ok
	}
	for _, t := range tags {
		for ; next < len(extra) && extra[next].tag <= t; next++ {
			if !member(extra[next].tag, extra[next].vr, extra[next].v) {
				return dst, false, beyond
			}
		}
		if next > 0 && extra[next-1].tag == t {
			continue
		}
		vr, values, held := rec.Attribute(t)
		if !held {
			continue // not an instance with metadata: left out, as Answer leaves it
		}
		if !member(t, vr, values) {
			return dst, false, beyond
		}
	}
	for ; next < len(extra); next++ {
		if !member(extra[next].tag, extra[next].vr, extra[next].v) {
			return dst, false, beyond
		}
	}
	return append(out, '}'), true, false
}

// retrieveURL is the URL of the study, series or instance a record stands for.
func retrieveURL(root string, rec index.Record) string {
	switch r := rec.(type) {
	case *index.Study:
		return root + "/studies/" + r.StudyInstanceUID
	case *index.Series:
		return root + "/studies/" + r.StudyInstanceUID + "/series/" + r.SeriesInstanceUID
	case *index.Instance:
		return instanceURL(root, r)
	}
	return root
}

// absoluteBulkURIs rewrites the relative BulkDataURIs of stored metadata
// ("bulkdata/...") into absolute URLs under the instance URL.
func absoluteBulkURIs(meta []byte, instanceURL string) []byte {
	return bytes.ReplaceAll(meta, []byte(`"BulkDataURI":"bulkdata/`), []byte(`"BulkDataURI":"`+instanceURL+`/bulkdata/`))
}
