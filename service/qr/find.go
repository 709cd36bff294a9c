package qr

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
)

// Index is what the Query/Retrieve SCPs read: the matching of index.Query.
type Index interface {
	Find(ctx context.Context, q index.Query) (*index.Result, error)
}

// Auditor records a DIMSE action of an association (service/audit.Trail does).
type Auditor interface {
	DIMSE(ctx context.Context, as *dimse.AssociationInfo, action, op string, st dimse.Status, study, patient, issuer string)
}

// FindSCP answers C-FIND (PS3.4 C.4.1) in the Patient Root and Study Root information
// models from the index, with the matching of index.Query. It is a dimse.FindHandler.
type FindSCP struct {
	Index Index
	// AETitle is Lumen's, answered as RetrieveAETitle.
	AETitle string
	Audit   Auditor      // nil: not audited
	Log     *slog.Logger // nil: quiet
}

var levels = map[string]index.Level{"PATIENT": index.PatientLevel, "STUDY": index.StudyLevel, "SERIES": index.SeriesLevel, "IMAGE": index.ImageLevel}

// skipKeys are identifier elements that are not matching keys.
var skipKeys = map[dcm.Tag]bool{dcm.TagSpecificCharacterSet: true, dcm.TagQueryRetrieveLevel: true, dcm.TagRetrieveAETitle: true, dcm.TagInstanceAvailability: true, dcm.NewTag(0x0008, 0x0201): true}

// HandleFind answers one C-FIND request: an identifier that does not parse or names no
// valid level is refused (C000, A900), each match is sent as a pending answer holding
// the requested return keys, in the request's character set when it can hold them,
// else in UTF-8.
func (h *FindSCP) HandleFind(ctx context.Context, req *dimse.FindRequest, send func([]byte, bool) error) (st dimse.Status) {
	var study, patient, issuer string
	defer func() { audited(h.Audit, ctx, req.Association, "query", "C-FIND", st, study, patient, issuer) }()
	f, err := dcm.ParseDataset(bytes.NewReader(req.Identifier), req.TransferSyntaxUID, 0, nil)
	if err != nil {
		return dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: "identifier does not parse"}
	}
	id := f.Dataset
	study, patient, issuer = id.String(dcm.TagStudyInstanceUID), id.Text(dcm.TagPatientID), id.Text(dcm.TagIssuerOfPatientID)
	levelName := id.String(dcm.TagQueryRetrieveLevel)
	level, ok := levels[levelName]
	if !ok {
		return dimse.Status{Code: dimse.StatusDataSetMismatch, ErrorComment: "QueryRetrieveLevel missing or not PATIENT/STUDY/SERIES/IMAGE"}
	}
	if level == index.PatientLevel && req.SOPClassUID == dimse.StudyRootFind {
		return dimse.Status{Code: dimse.StatusDataSetMismatch, ErrorComment: "Study Root has no PATIENT level"}
	}
	q := index.Query{Level: level}
	var keys []*dcm.Element
	for _, e := range id.Elements {
		if skipKeys[e.Tag] || e.Tag.Element() == 0 {
			continue
		}
		keys = append(keys, e)
		if e.VR == "SQ" || e.Value == nil || len(e.StringValues()) == 0 {
			continue // universal matching (or sequence matching, not supported): return key
		}
		v := id.Text(e.Tag)
		if e.VR != "PN" && e.VR != "LO" && e.VR != "SH" && e.VR != "LT" && e.VR != "ST" && e.VR != "UC" && e.VR != "UT" {
			v = strings.Join(e.StringValues(), "\\")
		}
		if strings.TrimSpace(v) == "" {
			continue
		}
		q.Filters = append(q.Filters, index.Filter{Tag: e.Tag, Value: v})
	}
	res, err := h.Index.Find(ctx, q)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return dimse.Status{Code: dimse.StatusCancel}
		}
		if errors.Is(err, index.ErrBadQuery) { // the identifier's fault: never "try again"
			return dimse.Status{Code: dimse.StatusCannotUnderstand, ErrorComment: strings.TrimPrefix(err.Error(), "index: ")}
		}
		logger(h.Log).Warn("dimse: C-FIND failed", "calling_ae", req.Association.CallingAETitle, "err", err)
		return dimse.Status{Code: dimse.StatusOutOfResources, ErrorComment: "index unavailable"}
	}
	// Answers come in the request's character set when it can hold them, else in UTF-8
	// (PS3.4 C.4.1.1.3.2 lets the SCP answer in another character set).
	reqCS := id.CharacterSet()
	warnIgnored := len(res.Ignored) > 0
	emit := func(vals func(dcm.Tag) (string, []string, bool)) error {
		out := &dcm.Dataset{}
		out.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", levelName))
		out.Set(dcm.NewString(dcm.TagRetrieveAETitle, "AE", h.AETitle))
		out.Set(dcm.NewString(dcm.TagInstanceAvailability, "CS", "ONLINE"))
		warn := warnIgnored
		var texts []textValue
		for _, k := range keys {
			vr, v, ok := vals(k.Tag)
			if !ok {
				warn = true
				vr = k.VR
				if vr == "" || vr == "UN" {
					vr = dcm.DictVR(k.Tag)
				}
				if vr == "SQ" {
					out.Set(dcm.NewSequence(k.Tag))
				} else {
					out.Set(dcm.NewElement(k.Tag, vr, nil))
				}
				continue
			}
			if isTextVR(vr) {
				texts = append(texts, textValue{k.Tag, vr, strings.Join(v, "\\")})
				continue
			}
			e, err := dcm.NewValue(k.Tag, vr, v...)
			if err != nil {
				return err
			}
			out.Set(e)
		}
		if scs := encodeTexts(out, texts, reqCS); scs != nil {
			out.Set(dcm.NewString(dcm.TagSpecificCharacterSet, "CS", scs...))
		}
		b, err := out.Encode(req.TransferSyntaxUID)
		if err != nil {
			return err
		}
		return send(b, warn)
	}
	var sendErr error
	switch level {
	case index.PatientLevel:
		for i := range res.Patients {
			if sendErr = emit(func(t dcm.Tag) (string, []string, bool) { return res.Patients[i].Attribute(t) }); sendErr != nil {
				break
			}
		}
	case index.StudyLevel:
		for i := range res.Studies {
			s := &res.Studies[i]
			if sendErr = emit(func(t dcm.Tag) (string, []string, bool) { return s.Attribute(t) }); sendErr != nil {
				break
			}
		}
	case index.SeriesLevel:
		for i := range res.Series {
			s := &res.Series[i]
			if sendErr = emit(func(t dcm.Tag) (string, []string, bool) { return s.Attribute(t) }); sendErr != nil {
				break
			}
		}
	case index.ImageLevel:
		for i := range res.Instances {
			in := &res.Instances[i]
			if sendErr = emit(func(t dcm.Tag) (string, []string, bool) { return in.Attribute(t) }); sendErr != nil {
				break
			}
		}
	}
	if sendErr != nil {
		return dimse.Status{Code: dimse.StatusCancel}
	}
	return dimse.Status{Code: dimse.StatusSuccess}
}

// textValue is an answer's value of a text VR, in UTF-8 (values joined by backslashes).
type textValue struct {
	tag   dcm.Tag
	vr    string
	value string
}

// isTextVR reports the VRs whose values Specific Character Set governs.
func isTextVR(vr string) bool {
	switch vr {
	case "PN", "LO", "SH", "LT", "ST", "UC", "UT":
		return true
	}
	return false
}

// encodeTexts adds the text values to ds: in ASCII when they are (the answer then has
// no Specific Character Set: nil), else in cs when it can hold them all (cs's defined
// terms are returned), else in UTF-8 ("ISO_IR 192").
func encodeTexts(ds *dcm.Dataset, texts []textValue, cs *dcm.CharacterSet) []string {
	ascii := true
	for _, t := range texts {
		if !isASCII(t.value) {
			ascii = false
		}
	}
	set := func(t textValue, b []byte) {
		if len(b)%2 == 1 {
			b = append(b, ' ')
		}
		ds.Set(dcm.NewElement(t.tag, t.vr, b))
	}
	if ascii {
		for _, t := range texts {
			set(t, []byte(t.value))
		}
		return nil
	}
	encoded := make([][]byte, len(texts))
	ok := true
	for i, t := range texts {
		b, err := cs.Encode(t.value, t.vr)
		if err != nil {
			ok = false
			break
		}
		encoded[i] = b
	}
	if !ok {
		for _, t := range texts {
			set(t, []byte(strings.ToValidUTF8(t.value, "\uFFFD")))
		}
		return []string{"ISO_IR 192"}
	}
	for i, t := range texts {
		set(t, encoded[i])
	}
	return cs.Terms()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// audited records an action when there is an auditor.
func audited(a Auditor, ctx context.Context, as *dimse.AssociationInfo, action, op string, st dimse.Status, study, patient, issuer string) {
	if a != nil {
		a.DIMSE(ctx, as, action, op, st, study, patient, issuer)
	}
}

// logger is l, or a logger that discards when l is nil.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
