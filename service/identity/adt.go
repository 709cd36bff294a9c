package identity

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lumenpacs/lumen/hl7"
	"github.com/lumenpacs/lumen/hl7/mllp"
	"github.com/lumenpacs/lumen/index"
)

// ADT handles HL7 v2 ADT messages received over MLLP (an mllp.Handler and
// mllp.TooLargeHandler): it applies them to Index and answers each with an
// original-mode acknowledgement (docs/hl7.md §4).
type ADT struct {
	// Index holds the patient records (required).
	Index index.Identity
	// Issuer is the configured assigning authority (hl7.issuer): PID-3 and MRG-1 use
	// the repetition whose CX-4 namespace ID or universal ID equals it, and it becomes
	// the records' IssuerOfPatientID. "" chooses the first repetition typed MR (CX-5),
	// else the first, with its CX-4.1 (else CX-4.2) as the issuer.
	Issuer string
	// ProcessingIDs are the values of MSH-11.1 accepted (HL7 Table 0103); nil means
	// only "P" (production). Others are answered AR 202.
	ProcessingIDs []string
	// Log receives one Info line per message (type, event, control ID, outcome, never
	// patient data) and the patient key at Debug; nil logs nothing.
	Log *slog.Logger
	// Now is the clock of the ACKs' MSH-7 (nil: time.Now).
	Now func() time.Time
	// ControlID makes the MSH-10 of each ACK (nil: a time-based counter).
	ControlID func() string
}

var ackSeq atomic.Uint64

// Supported trigger events and what they do.
var (
	updateEvents = []string{"A01", "A04", "A05", "A08", "A28", "A31"}
	mergeEvents  = []string{"A40", "A34", "A36"}
)

// Locations named in ERR segments.
var (
	locMSH9Type  = hl7.Location{Segment: "MSH", Seq: 1, Field: 9, Rep: 1, Component: 1}
	locMSH9Event = hl7.Location{Segment: "MSH", Seq: 1, Field: 9, Rep: 1, Component: 2}
	locMSH11     = hl7.Location{Segment: "MSH", Seq: 1, Field: 11}
	locPID       = hl7.Location{Segment: "PID", Seq: 1}
	locMRG       = hl7.Location{Segment: "MRG", Seq: 1}
	locPID3      = hl7.Location{Segment: "PID", Seq: 1, Field: 3}
	locPID5      = hl7.Location{Segment: "PID", Seq: 1, Field: 5}
	locPID7      = hl7.Location{Segment: "PID", Seq: 1, Field: 7}
	locPID8      = hl7.Location{Segment: "PID", Seq: 1, Field: 8}
	locMRG1      = hl7.Location{Segment: "MRG", Seq: 1, Field: 1}
)

func (a *ADT) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

func (a *ADT) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *ADT) controlID() string {
	if a.ControlID != nil {
		return a.ControlID()
	}
	return "LUMEN" + strconv.FormatInt(time.Now().UnixMilli(), 10) + "." + strconv.FormatUint(ackSeq.Add(1), 10)
}

// HandleTooLarge answers a frame over the listener's size limit: AR with 207
// (application internal error), the code hl7.Parse gives a message over its own limit;
// the header is read from head when it can be, and nothing is applied.
func (a *ADT) HandleTooLarge(ctx context.Context, head []byte, size int, c mllp.ConnInfo) []byte {
	e := hl7.Errorf(hl7.Location{}, hl7.CodeInternal, "the message has %d bytes: more than this receiver accepts", size)
	ack := hl7.AckBytes(head, hl7.AR, []*hl7.Error{e}, a.controlID(), a.now()).Encode()
	a.log().Info("hl7 message refused: too large", "conn", c.ID, "bytes", size, "ack", hl7.AR, "code", int(e.Code))
	return ack
}

// HandleTruncated answers a frame the sender stalled in (mllp.TruncatedHandler): AR with
// 207, read from the header when it can be; nothing is applied and the sender may send
// the message again.
func (a *ADT) HandleTruncated(ctx context.Context, head []byte, c mllp.ConnInfo) []byte {
	e := hl7.Errorf(hl7.Location{}, hl7.CodeInternal, "the frame ended before its end block: the message is incomplete and was not applied; send it again")
	ack := hl7.AckBytes(head, hl7.AR, []*hl7.Error{e}, a.controlID(), a.now()).Encode()
	a.log().Info("hl7 message refused: frame truncated", "conn", c.ID, "bytes", len(head), "ack", hl7.AR, "code", int(e.Code))
	return ack
}

// HandleMessage applies one message and returns its acknowledgement (see docs/hl7.md §4
// for the order of checks): AR for a message that does not parse or whose type, event,
// processing ID or version is not handled, and for a failure of the index (nothing is
// recorded: the sender resends); AE for a missing segment or field, a bad value or an
// identity conflict; AA once the change is committed. A message applied already gets
// the ACK recorded the first time.
func (a *ADT) HandleMessage(ctx context.Context, msg []byte, c mllp.ConnInfo) []byte {
	m, err := hl7.Parse(msg)
	if err != nil {
		e := hl7.AsError(err)
		a.log().Info("hl7 message refused: not parsable", "conn", c.ID, "ack", hl7.AR, "code", int(e.Code), "where", e.Location.String())
		return hl7.AckBytes(msg, hl7.AR, []*hl7.Error{e}, a.controlID(), a.now()).Encode()
	}
	code, errs, ack := a.handle(ctx, m)
	if ack == nil {
		ack = a.ack(m, code, errs)
	}
	outcome := code
	if outcome == "" {
		outcome = "duplicate: the ACK of the first time"
	}
	args := []any{"conn", c.ID, "type", m.Type(), "event", m.Event(), "control_id", m.ControlID(), "ack", outcome}
	for _, e := range errs {
		if e != nil {
			args = append(args, "code", int(e.Code), "where", e.Location.String())
			break
		}
	}
	a.log().Info("hl7 message", args...)
	return ack
}

// ack encodes the acknowledgement of m, with warnings (ERR-4 W) for errors of code 103
// in an AA.
func (a *ADT) ack(m *hl7.Message, code string, errs []*hl7.Error) []byte {
	am := hl7.Ack(m, code, errs, a.controlID(), a.now())
	if code == hl7.AA {
		for i := range errs {
			p := "ERR[" + strconv.Itoa(i+1) + "]-4"
			if am.Get(p).Present() {
				_ = am.Set(p, "W")
			}
		}
	}
	return am.Encode()
}

// handle decides the answer to a parsed message: its code and errors, or the ACK bytes
// themselves (a duplicate's stored ACK, or the AA recorded with the change).
func (a *ADT) handle(ctx context.Context, m *hl7.Message) (string, []*hl7.Error, []byte) {
	reject := func(loc hl7.Location, code hl7.Code, format string, args ...any) (string, []*hl7.Error, []byte) {
		return hl7.AR, []*hl7.Error{hl7.Errorf(loc, code, format, args...)}, nil
	}
	refuse := func(e *hl7.Error) (string, []*hl7.Error, []byte) {
		return hl7.AE, []*hl7.Error{e}, nil
	}
	// IHE requires the recommended delimiters (docs/hl7.md §4 row 2): |^~\& (and the
	// truncation character # from v2.7).
	if d := m.Delimiters(); d.Field != '|' {
		return reject(hl7.Location{Segment: "MSH", Seq: 1, Field: 1}, hl7.CodeDataType, "the field separator (MSH-1) is not |")
	} else if enc := d.EncodingCharacters(); enc != `^~\&` && enc != `^~\&#` {
		return reject(hl7.Location{Segment: "MSH", Seq: 1, Field: 2}, hl7.CodeDataType, "the encoding characters (MSH-2) are not ^~\\&")
	}
	// MSH-9 to MSH-12 are checked by hl7.Parse; MSH-3 names the sender of the
	// exactly-once key and MSH-7 is required (docs/hl7.md §4 row 3).
	for _, f := range []struct {
		n    int
		what string
	}{{3, "the sending application (MSH-3)"}, {7, "the message date/time (MSH-7)"}} {
		if v := m.At(hl7.Location{Segment: "MSH", Seq: 1, Field: f.n, Rep: 1, Component: 1}); v.Empty() || v.Null() {
			return reject(hl7.Location{Segment: "MSH", Seq: 1, Field: f.n}, hl7.CodeRequiredFieldMissing, "%s is missing", f.what)
		}
	}
	if t := m.Type(); t != "ADT" {
		return reject(locMSH9Type, hl7.CodeUnsupportedMessageType, "message type %q is not handled: this receiver takes ADT", t)
	}
	ev := m.Event()
	isUpdate, isMerge, isChange := slices.Contains(updateEvents, ev), slices.Contains(mergeEvents, ev), ev == "A47"
	if !isUpdate && !isMerge && !isChange {
		return reject(locMSH9Event, hl7.CodeUnsupportedEvent, "event %q is not handled: this receiver takes A01, A04, A05, A08, A28, A31, A34, A36, A40 and A47", ev)
	}
	pids := a.ProcessingIDs
	if pids == nil {
		pids = []string{"P"}
	}
	if p := m.ProcessingID(); !slices.Contains(pids, p) {
		return reject(locMSH11, hl7.CodeUnsupportedProcessingID, "processing ID %q is not accepted", p)
	}
	if e := m.CheckVersion(); e != nil {
		return hl7.AR, []*hl7.Error{e}, nil
	}

	if m.Segment("PID") == nil {
		return refuse(hl7.Errorf(locPID, hl7.CodeSegmentSequence, "the PID segment is missing"))
	}
	// IHE PAM: one patient (one PID, and for a merge one MRG) per message. HL7 lets an
	// A40 repeat the PID/MRG group; applying only the first would drop the rest
	// silently, so such a message is refused whole.
	if n := len(m.All("PID")); n > 1 {
		return refuse(hl7.Errorf(hl7.Location{Segment: "PID", Seq: 2}, hl7.CodeSegmentSequence, "one PID segment per message (IHE PAM): send each patient in its own message"))
	}
	if n := len(m.All("MRG")); n > 1 {
		return refuse(hl7.Errorf(hl7.Location{Segment: "MRG", Seq: 2}, hl7.CodeSegmentSequence, "one MRG segment per message (IHE PAM): send each merge in its own message"))
	}
	target, e := a.patientKey(m, locPID3, "PID-3")
	if e != nil {
		return refuse(e)
	}
	var source index.PatientKey
	if isMerge || isChange {
		if m.Segment("MRG") == nil {
			return refuse(hl7.Errorf(locMRG, hl7.CodeSegmentSequence, "the MRG segment is missing"))
		}
		if source, e = a.patientKey(m, locMRG1, "MRG-1"); e != nil {
			return refuse(e)
		}
	}
	var d index.Demographics
	var warnings []*hl7.Error
	if isUpdate {
		if d, warnings, e = demographics(m); e != nil {
			return refuse(e)
		}
	}

	// The AA the change is recorded with: answered only once the index call returns nil.
	aa := a.ack(m, hl7.AA, warnings)
	id := &index.MessageID{
		Application: m.Get("MSH-3.1").String(),
		Facility:    m.Get("MSH-4.1").String(),
		ControlID:   m.ControlID(),
		Ack:         aa,
	}
	change := index.Change{Source: "hl7", Actor: id.Facility + "|" + id.Application, Message: id}
	log := a.log()
	switch {
	case isUpdate:
		log.Debug("hl7 update patient", "control_id", id.ControlID, "patient", target.ID, "issuer", target.Issuer)
		_, err := a.Index.UpdatePatient(ctx, target, d, change)
		if err != nil {
			return a.failed(ctx, id, err, func() *hl7.Error {
				if errors.Is(err, index.ErrMerged) {
					return hl7.Errorf(locPID3, hl7.CodeUnknownKey, "the patient identifier was merged into another record")
				}
				return nil
			})
		}
	case isMerge:
		log.Debug("hl7 merge patients", "control_id", id.ControlID, "survivor", target.ID, "survivor_issuer", target.Issuer, "merged", source.ID, "merged_issuer", source.Issuer)
		err := a.Index.MergePatients(ctx, target, source, change)
		if err != nil {
			return a.failed(ctx, id, err, func() *hl7.Error {
				if errors.Is(err, index.ErrConflict) || errors.Is(err, index.ErrMerged) {
					return a.mergeConflict(ctx, target, source)
				}
				return nil
			})
		}
	case isChange:
		log.Debug("hl7 change patient identifier", "control_id", id.ControlID, "new", target.ID, "new_issuer", target.Issuer, "old", source.ID, "old_issuer", source.Issuer)
		err := a.Index.ChangePatientID(ctx, source, target, change)
		if errors.Is(err, index.ErrNotFound) {
			// IHE PAM (ITI TF-2 §3.30.6.5): an unknown prior identifier is nothing to
			// do, not an error. Nothing was recorded: a resend is decided afresh.
			return hl7.AA, warnings, nil
		}
		if err != nil {
			return a.failed(ctx, id, err, func() *hl7.Error {
				switch {
				case errors.Is(err, index.ErrMerged):
					return hl7.Errorf(locMRG1, hl7.CodeUnknownKey, "the prior identifier was merged into another record")
				case errors.Is(err, index.ErrConflict):
					return hl7.Errorf(locPID3, hl7.CodeDuplicateKey, "the new identifier belongs to a patient record already (a merge, A40, is needed)")
				}
				return nil
			})
		}
	}
	return hl7.AA, warnings, aa
}

// failed answers an index error: the stored ACK of a duplicate; AE with the error
// refusal gives; else AR 207 (nothing was recorded, the sender may resend).
func (a *ADT) failed(ctx context.Context, id *index.MessageID, err error, refusal func() *hl7.Error) (string, []*hl7.Error, []byte) {
	if errors.Is(err, index.ErrDuplicateMessage) {
		ack, ok, err := a.Index.Message(ctx, *id)
		if err == nil && ok {
			return "", nil, ack
		}
		a.log().Warn("hl7 duplicate message: its ACK could not be read", "control_id", id.ControlID, "err", err)
		return hl7.AR, []*hl7.Error{internal()}, nil
	}
	if e := refusal(); e != nil {
		a.log().Debug("hl7 message refused by the index", "control_id", id.ControlID, "err", err)
		return hl7.AE, []*hl7.Error{e}, nil
	}
	// The error text may name the patient: Debug only.
	a.log().Warn("hl7 message not applied: index failure", "control_id", id.ControlID)
	a.log().Debug("hl7 index failure", "control_id", id.ControlID, "err", err)
	return hl7.AR, []*hl7.Error{internal()}, nil
}

func internal() *hl7.Error {
	return hl7.Errorf(hl7.Location{}, hl7.CodeInternal, "the message could not be applied now; resend it later")
}

// mergeConflict names the field a refused merge is about (docs/hl7.md §1, Lumen's
// merge rules), from the records as they are now.
func (a *ADT) mergeConflict(ctx context.Context, target, source index.PatientKey) *hl7.Error {
	if target == source {
		return hl7.Errorf(locMRG1, hl7.CodeDuplicateKey, "the prior identifier is the surviving one")
	}
	if _, merged, err := a.Index.ResolvePatient(ctx, target); err == nil && merged {
		return hl7.Errorf(locPID3, hl7.CodeUnknownKey, "the surviving identifier was merged into another record")
	}
	if to, merged, err := a.Index.ResolvePatient(ctx, source); err == nil && merged && to != target {
		if to2, _, err := a.Index.ResolvePatient(ctx, target); err == nil && to2 == source {
			return hl7.Errorf(locMRG1, hl7.CodeDuplicateKey, "the merge would make a cycle")
		}
		return hl7.Errorf(locMRG1, hl7.CodeUnknownKey, "the prior identifier was merged into another record")
	}
	return hl7.Errorf(locMRG1, hl7.CodeDuplicateKey, "the merge would make a cycle")
}

// patientKey chooses the identifier of a CX list (PID-3 or MRG-1) by the rule of
// docs/hl7.md §2.1.
func (a *ADT) patientKey(m *hl7.Message, loc hl7.Location, name string) (index.PatientKey, *hl7.Error) {
	f := m.At(loc)
	if f.Empty() || f.Null() {
		return index.PatientKey{}, hl7.Errorf(loc, hl7.CodeRequiredFieldMissing, "%s (patient identifier list) is missing", name)
	}
	n := f.NumReps()
	chosen := 0
	if a.Issuer != "" {
		for i := 1; i <= n; i++ {
			r := f.Rep(i)
			if ns, uid := r.Component(4).Sub(1).String(), r.Component(4).Sub(2).String(); ns == a.Issuer || uid == a.Issuer {
				chosen = i
				break
			}
		}
		if chosen == 0 {
			return index.PatientKey{}, hl7.Errorf(loc, hl7.CodeUnknownKey, "%s has no identifier of the configured assigning authority", name)
		}
	} else {
		for i := 1; i <= n; i++ {
			if f.Rep(i).Component(5).String() == "MR" {
				chosen = i
				break
			}
		}
		if chosen == 0 {
			chosen = 1
		}
	}
	r := f.Rep(chosen)
	l := loc
	l.Rep, l.Component = chosen, 1
	id := r.Component(1)
	if id.Empty() || id.Null() {
		return index.PatientKey{}, hl7.Errorf(l, hl7.CodeRequiredFieldMissing, "%s: the ID number (CX-1) is missing", name)
	}
	v := id.String()
	if len([]rune(v)) > 64 {
		return index.PatientKey{}, hl7.Errorf(l, tooLong(m), "%s: the ID number is longer than 64 characters (DICOM LO)", name)
	}
	issuer := a.Issuer
	if issuer == "" {
		issuer = r.Component(4).Sub(1).String()
		if issuer == "" {
			issuer = r.Component(4).Sub(2).String()
		}
	}
	return index.PatientKey{ID: v, Issuer: issuer}, nil
}

// tooLong is the code for a value too long: 104 from v2.7 (v2.6 defines it, the
// design follows ITI's 2.7 reading), 102 before.
func tooLong(m *hl7.Message) hl7.Code {
	switch m.Version() {
	case "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6":
		return hl7.CodeDataType
	}
	return hl7.CodeValueTooLong
}

// demographics reads PID-5, PID-7 and PID-8 (docs/hl7.md §2.2, §2.3, §3): an empty
// field leaves the value (nil), `""` deletes it, a value replaces it. PID-5 is
// required. It returns warnings (an unknown sex code) for an AA.
func demographics(m *hl7.Message) (index.Demographics, []*hl7.Error, *hl7.Error) {
	var d index.Demographics
	var warnings []*hl7.Error
	name := m.At(locPID5)
	if name.Empty() || name.Null() {
		return d, nil, hl7.Errorf(locPID5, hl7.CodeRequiredFieldMissing, "PID-5 (patient name) is missing")
	}
	pn, e := personName(m, name)
	if e != nil {
		return d, nil, e
	}
	if pn == "" {
		return d, nil, hl7.Errorf(locPID5, hl7.CodeRequiredFieldMissing, "PID-5 (patient name) has no alphabetic name")
	}
	d.Name = &pn

	if b := m.At(locPID7); b.Null() {
		d.BirthDate = ptr("")
	} else if !b.Empty() {
		digits, ok := dtmDigits(b.Component(1).String())
		if !ok || !slices.Contains([]int{4, 6, 8, 10, 12, 14}, len(digits)) {
			return d, nil, hl7.Errorf(locPID7, hl7.CodeDataType, "PID-7 (date of birth) is not an HL7 date/time")
		}
		if len(digits) >= 8 {
			if _, err := time.Parse("20060102", digits[:8]); err != nil {
				return d, nil, hl7.Errorf(locPID7, hl7.CodeDataType, "PID-7 (date of birth) is not a calendar date")
			}
			d.BirthDate = ptr(digits[:8])
		} else {
			// DA has no partial form: a year or month only is given to DICOM as zero length.
			d.BirthDate = ptr("")
		}
	}

	if s := m.At(locPID8); s.Null() {
		d.Sex = ptr("")
	} else if !s.Empty() {
		switch v := s.Component(1).String(); v {
		case "F", "M", "O":
			d.Sex = ptr(v)
		case "A", "N", "X":
			d.Sex = ptr("O")
		case "U":
			d.Sex = ptr("")
		default:
			d.Sex = ptr("")
			warnings = append(warnings, hl7.Errorf(locPID8, hl7.CodeTableValue, "PID-8 (administrative sex) is not a code of HL7 Table 0001; recorded as unknown"))
		}
	}
	return d, warnings, nil
}

// personName maps the alphabetic repetition of an XPN field to a DICOM PN: family ^
// given ^ middle ^ prefix (XPN-5) ^ suffix (XPN-4, with degree XPN-6 and professional
// suffix XPN-14 appended), trailing empty components dropped.
func personName(m *hl7.Message, f hl7.Value) (string, *hl7.Error) {
	n := f.NumReps()
	rep, at := hl7.Value{}, 0
	for i := 1; i <= n; i++ {
		r := f.Rep(i)
		if t := r.Component(8).String(); t == "" || t == "A" {
			rep, at = r, i
			break
		}
	}
	if at == 0 {
		return "", nil
	}
	comp := func(c int) string {
		v := rep.Component(c)
		if c == 1 {
			v = v.Sub(1)
		}
		if v.Null() {
			return ""
		}
		return strings.Map(func(r rune) rune {
			if r == '^' || r == '=' || r == '\\' || r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, v.String())
	}
	suffix := strings.Join(slices.DeleteFunc([]string{comp(4), comp(6), comp(14)}, func(s string) bool { return s == "" }), " ")
	pn := strings.TrimRight(strings.Join([]string{comp(1), comp(2), comp(3), comp(5), suffix}, "^"), "^")
	if len([]rune(pn)) > 64 {
		return "", hl7.Errorf(hl7.Location{Segment: "PID", Seq: 1, Field: 5, Rep: at}, tooLong(m), "PID-5 (patient name) is longer than 64 characters (DICOM PN component group)")
	}
	return pn, nil
}

// dtmDigits returns the date and time digits of an HL7 DTM value
// (YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]), ok false when it has another form:
// a fraction only after the seconds, 1 to 4 digits; an offset of exactly 4 digits.
func dtmDigits(ts string) (string, bool) {
	if i := strings.IndexAny(ts, "+-"); i >= 0 {
		if z := ts[i+1:]; len(z) != 4 || !allDigits(z) {
			return "", false
		}
		ts = ts[:i]
	}
	if i := strings.IndexByte(ts, '.'); i >= 0 {
		if f := ts[i+1:]; i != 14 || len(f) < 1 || len(f) > 4 || !allDigits(f) {
			return "", false
		}
		ts = ts[:i]
	}
	return ts, allDigits(ts)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func ptr(s string) *string { return &s }

// Interface checks.
var (
	_ mllp.Handler         = (*ADT)(nil)
	_ mllp.TooLargeHandler = (*ADT)(nil)
)
