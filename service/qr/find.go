package qr

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"log/slog"
	"strings"

	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
)

// Index is what the Query/Retrieve SCPs read: the matching of index.Query, collected
// (Find, for retrieval) or streamed (FindSeq, for C-FIND's pending responses).
type Index interface {
	Find(ctx context.Context, q index.Query) (*index.Result, error)
	FindSeq(ctx context.Context, q index.Query) (ignored []dcm.Tag, records iter.Seq2[index.Record, error])
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
// else in UTF-8. The matches are sent as the index reads them (index.Index.FindSeq);
// should the index fail part way, the responses already sent stand and the final one
// says the failure.
func (h *FindSCP) HandleFind(ctx context.Context, req *dimse.FindRequest, send func([]byte, bool) error) (st dimse.Status) {
	var study, patient, issuer string
	defer func() { audited(ctx, h.Audit, req.Association, "query", "C-FIND", st, study, patient, issuer) }()
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
		if !dcm.IsTextVR(e.VR) {
			v = strings.Join(e.StringValues(), "\\")
		}
		if strings.TrimSpace(v) == "" {
			continue
		}
		q.Filters = append(q.Filters, index.Filter{Tag: e.Tag, Value: v})
	}
	// The matches are answered as the index reads them: the first pending response goes
	// out before the last match is read.
	ignored, records := h.Index.FindSeq(ctx, q)
	// Answers come in the request's character set when it can hold them, else in UTF-8
	// (PS3.4 C.4.1.1.3.2 lets the SCP answer in another character set).
	reqCS := id.CharacterSet()
	warnIgnored := len(ignored) > 0
	tags := make([]dcm.Tag, len(keys))
	byTag := make(map[dcm.Tag]*dcm.Element, len(keys))
	for i, k := range keys {
		tags[i], byTag[k.Tag] = k.Tag, k
	}
	var sendErr error
	for rec, err := range records {
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
		out, missing, err := index.Answer(rec, tags, reqCS)
		if err != nil {
			sendErr = err
			break
		}
		out.Set(dcm.NewString(dcm.TagQueryRetrieveLevel, "CS", levelName))
		out.Set(dcm.NewString(dcm.TagRetrieveAETitle, "AE", h.AETitle))
		out.Set(dcm.NewString(dcm.TagInstanceAvailability, "CS", "ONLINE"))
		for _, t := range missing { // a return key the index does not keep: empty
			vr := byTag[t].VR
			if vr == "" || vr == "UN" {
				vr = dcm.DictVR(t)
			}
			if vr == "SQ" {
				out.Set(dcm.NewSequence(t))
			} else {
				out.Set(dcm.NewElement(t, vr, nil))
			}
		}
		b, err := out.Encode(req.TransferSyntaxUID)
		if err != nil {
			sendErr = err
			break
		}
		if sendErr = send(b, warnIgnored || len(missing) > 0); sendErr != nil {
			break
		}
	}
	if sendErr != nil {
		return dimse.Status{Code: dimse.StatusCancel}
	}
	return dimse.Status{Code: dimse.StatusSuccess}
}

// audited records an action when there is an auditor.
func audited(ctx context.Context, a Auditor, as *dimse.AssociationInfo, action, op string, st dimse.Status, study, patient, issuer string) {
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
