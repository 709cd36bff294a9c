package dicomweb

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/transcode"
)

// instances returns the indexed instances the path names (study, series or instance),
// in study/series/instance order, or a 404.
func (s *Service) instances(c echo.Context, withMetadata bool) ([]index.Instance, error) {
	study, series, inst, err := uidParams(c)
	if err != nil {
		return nil, err
	}
	q := index.Query{Level: index.ImageLevel, WithMetadata: withMetadata}
	what := "study"
	q.Filters = append(q.Filters, index.Filter{Tag: dcm.TagStudyInstanceUID, Value: study})
	if series != "" {
		q.Filters = append(q.Filters, index.Filter{Tag: dcm.TagSeriesInstanceUID, Value: series})
		what = "series"
	}
	if inst != "" {
		q.Filters = append(q.Filters, index.Filter{Tag: dcm.TagSOPInstanceUID, Value: inst})
		what = "instance"
	}
	res, err := s.Index.Find(c.Request().Context(), q)
	if err != nil {
		return nil, err
	}
	if len(res.Instances) == 0 {
		return nil, echo.NewHTTPError(http.StatusNotFound, "no such "+what)
	}
	return res.Instances, nil
}

// instance returns the record (with metadata, layout and bulk references) of the
// instance the path names, or a 404 when it is not in the path's study and series.
func (s *Service) instance(c echo.Context) (*index.Instance, error) {
	study, series, uid, err := uidParams(c)
	if err != nil {
		return nil, err
	}
	in, err := s.Index.Instance(c.Request().Context(), uid)
	if errors.Is(err, index.ErrNotFound) || (err == nil && (in.StudyInstanceUID != study || in.SeriesInstanceUID != series)) {
		return nil, echo.NewHTTPError(http.StatusNotFound, "no such instance")
	}
	return in, err
}

func instanceURL(root string, in *index.Instance) string {
	return root + "/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID + "/instances/" + in.SOPInstanceUID
}

// retrieveChoice is the representation chosen for retrieved instances.
type retrieveChoice struct {
	multipart bool
	ts        string // transfer-syntax parameter asked for: "", "*" or a UID
}

// chooseInstanceMedia negotiates PS3.18 8.7.3.3: multipart/related;
// type="application/dicom" (default), or application/dicom for one instance.
func chooseInstanceMedia(accept string, count int) (retrieveChoice, bool) {
	for _, m := range parseAccept(accept) {
		switch {
		case m.typ == "multipart/related":
			inner := m.params["type"]
			if inner == "" || inner == "application/dicom" || inner == "*/*" {
				return retrieveChoice{multipart: true, ts: m.params["transfer-syntax"]}, true
			}
		case m.typ == "application/dicom":
			return retrieveChoice{multipart: count != 1, ts: m.params["transfer-syntax"]}, true
		case m.typ == "*/*" || m.typ == "multipart/*" || m.typ == "application/*":
			return retrieveChoice{multipart: true}, true
		}
	}
	return retrieveChoice{}, false
}

// startMultipart begins a multipart/related answer whose parts are of type inner.
func startMultipart(c echo.Context, inner string) *multipart.Writer {
	w := c.Response()
	mw := multipart.NewWriter(w)
	_ = mw.SetBoundary(newBoundary())
	w.Header().Set("Content-Type", `multipart/related; type="`+inner+`"; boundary=`+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	return mw
}

// errStore marks failures of the object store (answered 503 or 404), as opposed to
// objects that cannot be decoded or rendered.
var errStore = errors.New("object store")

func storeFailed(err error) error { return fmt.Errorf("%w: %w", errStore, err) }

// readRange reads n stored bytes at off of an object.
func (s *Service) readRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	rc, err := s.Store.GetRange(ctx, key, off, n)
	if err != nil {
		return nil, storeFailed(err)
	}
	defer rc.Close()
	// As io.ReadAll, into a buffer of the expected size (capped: n comes from the
	// index), so a frame is not copied from ever larger buffers.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(n, 0), 256<<20)+bytes.MinRead))
	if _, err := buf.ReadFrom(rc); err != nil {
		return nil, storeFailed(err)
	}
	return buf.Bytes(), nil
}

func newBoundary() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "lumen-" + hex.EncodeToString(b[:])
}

// abort ends a response whose status line has gone out: the client sees a broken
// transfer instead of a complete-looking one.
func abort() {
	panic(http.ErrAbortHandler)
}

// outputSyntax decides the transfer syntax an instance stored in stored goes out in,
// for a transfer-syntax parameter param ("" when absent). "*" and the stored UID mean
// as stored; another UID is produced when transcode.Can (Explicit or Implicit VR Little
// Endian, Deflated Explicit VR Little Endian), else ok is false. Without the parameter,
// PS3.18 8.7.3.5.2 makes Explicit VR Little Endian the default: the object is converted
// when it can be and sent as stored (saying so in its Content-Type) when it cannot
// (fallback: also when its pixel data turn out not to decode).
func outputSyntax(param, stored string) (ts string, fallback, ok bool) {
	switch {
	case param == "*" || param == stored:
		return stored, false, true
	case param != "":
		return param, false, transcode.Can(stored, param)
	case transcode.Can(stored, tsExplicitLE):
		return tsExplicitLE, stored != tsExplicitLE, true
	}
	return stored, false, true
}

// prepare opens the conversion of an instance to ts (to its stored syntax when
// fallback and the conversion cannot be done): transcode.Prepare, which parses the
// header and decodes the first frame, so that a conversion that cannot be done fails
// before anything is written.
func (s *Service) prepare(ctx context.Context, in *index.Instance, ts string, fallback bool) (*transcode.Conversion, error) {
	c, err := transcode.Prepare(ctx, s.Store, transcode.ObjectOf(in), ts)
	if err != nil && fallback && errors.Is(err, transcode.ErrNoConversion) {
		s.log().Debug("dicomweb: retrieve: sent as stored", "transfer_syntax", in.TransferSyntaxUID, "reason", err)
		return transcode.Prepare(ctx, s.Store, transcode.ObjectOf(in), in.TransferSyntaxUID)
	}
	return c, err
}

// notAcceptable is the 406 answer to a conversion that cannot be done.
func notAcceptable(err error, stored, ts string) error {
	var ce *transcode.ConversionError
	if errors.As(err, &ce) {
		return echo.NewHTTPError(http.StatusNotAcceptable, fmt.Sprintf("the instance is stored in transfer syntax %s and cannot be sent in %s: %s; ask with transfer-syntax=* or %s", ce.From, ce.To, ce.Reason, stored))
	}
	return echo.NewHTTPError(http.StatusNotAcceptable, fmt.Sprintf("the instance is stored in transfer syntax %s and cannot be sent in %s; ask with transfer-syntax=* or %s", stored, ts, stored))
}

// maxLeftOutWarnings caps the Warning headers naming instances left out of a
// retrieval; the others are counted in one more.
const maxLeftOutWarnings = 10

// writeConverted writes a prepared conversion to w; a frame that fails to decode
// midway is logged (the caller breaks the transfer off).
func (s *Service) writeConverted(w io.Writer, in *index.Instance, c *transcode.Conversion) error {
	err := c.WriteFile(w)
	var fe *transcode.FrameError
	if errors.As(err, &fe) {
		s.log().Warn("dicomweb: retrieve: a frame did not decode mid-response; the transfer is broken off",
			"transfer_syntax", in.TransferSyntaxUID, "to", c.TransferSyntax, "frame", fe.Frame, "err", fe.Err)
	} else if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errPartLength) {
		s.log().Info("dicomweb: retrieve: transfer broken off", "transfer_syntax", in.TransferSyntaxUID, "to", c.TransferSyntax, "err", err)
	}
	return err
}

// planned is an instance to send, in transfer syntax ts (fallback: as stored if its
// conversion cannot be done).
type planned struct {
	in       *index.Instance
	ts       string
	fallback bool
}

// retrieve streams instances as multipart/related; type="application/dicom" (WADO-RS
// RetrieveStudy/Series/Instance), or one as application/dicom: as stored or converted
// (outputSyntax). Each instance's conversion is checked before the status line goes
// out (transcode.Check: the syntaxes, and the first frame of compressed pixel data);
// an instance that cannot be sent as asked is left out of a multipart answer and named
// in a Warning header, and when none is left the answer is 406 with the reason. A
// frame that fails to decode after the answer has begun is logged and the transfer is
// broken off. When every part's length is known before the answer begins (partLengths)
// the body has a Content-Length, and the stored files go to the connection zero-copy
// (body); otherwise it is chunked.
func (s *Service) retrieve(c echo.Context) error {
	list, err := s.instances(c, false)
	if err != nil {
		return err
	}
	choice, ok := chooseInstanceMedia(c.Request().Header.Get("Accept"), len(list))
	if !ok {
		return echo.NewHTTPError(http.StatusNotAcceptable, `instances are available as multipart/related; type="application/dicom" or application/dicom`)
	}
	ctx := c.Request().Context()
	var plan []planned
	var leftOut []string
	var firstErr error
	for i := range list {
		in := &list[i]
		ts, fallback, ok := outputSyntax(choice.ts, in.TransferSyntaxUID)
		var err error
		if !ok {
			err = &transcode.ConversionError{From: in.TransferSyntaxUID, To: ts, Reason: "no conversion between these syntaxes"}
		} else if !fallback {
			err = transcode.Check(ctx, s.Store, transcode.ObjectOf(in), ts)
		}
		if err != nil && !errors.Is(err, transcode.ErrNoConversion) {
			return err // the store or the request failed
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			leftOut = append(leftOut, in.SOPInstanceUID)
			if len(leftOut) <= maxLeftOutWarnings {
				addWarning(c, "instance "+in.SOPInstanceUID+" is left out: "+strings.TrimPrefix(err.Error(), "cannot convert "))
			}
			continue
		}
		plan = append(plan, planned{in, ts, fallback})
	}
	if len(plan) == 0 {
		c.Response().Header().Del("Warning")
		if len(list) == 1 {
			return notAcceptable(firstErr, list[0].TransferSyntaxUID, choice.ts)
		}
		return echo.NewHTTPError(http.StatusNotAcceptable, fmt.Sprintf("none of the %d instances can be sent in %s (for example %s); ask with transfer-syntax=*", len(list), choice.ts, strings.TrimPrefix(firstErr.Error(), "cannot convert ")))
	}
	if n := len(leftOut) - maxLeftOutWarnings; n > 0 {
		addWarning(c, fmt.Sprintf("%d more instances are left out (no conversion to %s)", n, choice.ts))
	}
	if len(leftOut) > 0 {
		s.log().Info("dicomweb: retrieve: instances left out", "path", c.Path(), "left_out", len(leftOut), "sent", len(plan), "reason", firstErr)
	}
	// The first conversion is prepared before the status goes out, so a missing object
	// is a 404/503 and one that cannot be converted a 406.
	first, err := s.prepare(ctx, plan[0].in, plan[0].ts, plan[0].fallback)
	if err != nil {
		if errors.Is(err, transcode.ErrNoConversion) {
			return notAcceptable(err, plan[0].in.TransferSyntaxUID, plan[0].ts)
		}
		return err
	}
	w := c.Response()
	if !choice.multipart {
		defer first.Close()
		w.Header().Set("Content-Type", "application/dicom; transfer-syntax="+first.TransferSyntax)
		if first.Length >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(first.Length, 10))
		}
		w.WriteHeader(http.StatusOK)
		b := newBody(w, first.Length >= 0)
		defer b.release()
		if s.sendConverted(b, nil, plan[0].in, first) != nil {
			b.abort()
		}
		return nil
	}
	conv := first
	defer func() { conv.Close() }() // also when the transfer is broken off
	boundary := newBoundary()
	root := s.root(c)
	// When the length of every part is known in advance, so is the body's: with a
	// Content-Length, net/http does not chunk the body and the stored files go to the
	// connection zero-copy (body).
	known, kept := s.partLengths(ctx, plan, first)
	defer func() {
		for _, k := range kept {
			if k != nil {
				k.Close()
			}
		}
	}()
	var total int64
	for i, p := range known {
		total += int64(len(partHead(boundary, i == 0, p.ts, p.length, instanceURL(root, plan[i].in)))) + p.length
	}
	closing := partsEnd(boundary, len(plan))
	w.Header().Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+boundary)
	if known != nil {
		w.Header().Set("Content-Length", strconv.FormatInt(total+int64(len(closing)), 10))
	}
	w.WriteHeader(http.StatusOK)
	b := newBody(w, known != nil)
	defer b.release()
	for i, p := range plan {
		if i > 0 {
			var next *transcode.Conversion
			var err error
			if i < len(kept) && kept[i] != nil {
				next, kept[i] = kept[i], nil
				err = next.Open()
			} else {
				next, err = s.prepare(ctx, p.in, p.ts, p.fallback)
			}
			if err != nil {
				s.log().Warn("dicomweb: retrieve: instance not prepared mid-response; the transfer is broken off", "key", p.in.BlobKey, "err", err)
				b.abort()
			}
			conv = next
		}
		if known != nil && (conv.Length != known[i].length || conv.TransferSyntax != known[i].ts) {
			s.log().Warn("dicomweb: retrieve: an instance's length changed since the response began; the transfer is broken off", "key", p.in.BlobKey)
			b.abort()
		}
		err := s.sendConverted(b, partHead(boundary, i == 0, conv.TransferSyntax, conv.Length, instanceURL(root, p.in)), p.in, conv)
		conv.Close()
		if err != nil {
			b.abort()
		}
	}
	if _, err := b.Write(closing); err != nil || b.Flush() != nil {
		b.abort()
	}
	return nil
}

// partSize is the transfer syntax and length of a part known before it is prepared.
type partSize struct {
	ts     string
	length int64
}

// maxKeptConversions bounds the conversions partLengths keeps for the parts they
// measured (each holds its header's edits, not an open file); the parts after them are
// prepared again when their turn comes.
const maxKeptConversions = 1024

// partLengths returns the transfer syntax and exact length of every part of a
// retrieval when all are known before the answer begins, else nil: objects sent as
// stored have the size the index records; those whose header is corrected on the way
// out (edited in place) are prepared (transcode.PrepareClosed: the header read,
// corrected and its edits computed, the object not opened) and measured; a conversion
// to another transfer syntax has no length known in advance. The conversions prepared
// are returned by part (nil for the others, and past maxKeptConversions, when they
// are closed), for the response to open and send rather than prepare again; the
// caller closes those it does not use.
func (s *Service) partLengths(ctx context.Context, plan []planned, first *transcode.Conversion) ([]partSize, []*transcode.Conversion) {
	out := make([]partSize, len(plan))
	var kept []*transcode.Conversion
	release := func() {
		for _, c := range kept {
			if c != nil {
				c.Close()
			}
		}
	}
	nkept := 0
	for i, p := range plan {
		switch {
		case i == 0:
			out[i] = partSize{first.TransferSyntax, first.Length}
		case p.ts != p.in.TransferSyntaxUID:
			release()
			return nil, nil
		case !p.in.Corrected:
			if p.in.Size <= 0 {
				release()
				return nil, nil
			}
			out[i] = partSize{p.ts, p.in.Size}
		default:
			c, err := transcode.PrepareClosed(ctx, s.Store, transcode.ObjectOf(p.in), p.ts)
			if err != nil {
				release()
				return nil, nil // it fails again when its turn comes, mid-response
			}
			out[i] = partSize{c.TransferSyntax, c.Length}
			if nkept < maxKeptConversions {
				if kept == nil {
					kept = make([]*transcode.Conversion, len(plan))
				}
				kept[i] = c
				nkept++
			} else {
				c.Close()
			}
		}
		if out[i].length < 0 {
			release()
			return nil, nil
		}
	}
	return out, kept
}

// partHead is the delimiter and header of a part of application/dicom in a
// multipart/related body, as mime/multipart writes them (length -1: no
// Content-Length).
func partHead(boundary string, first bool, ts string, length int64, location string) []byte {
	b := make([]byte, 0, 160+len(boundary)+len(location))
	if !first {
		b = append(b, "\r\n"...)
	}
	b = append(b, "--"+boundary+"\r\n"...)
	if length >= 0 {
		b = strconv.AppendInt(append(b, "Content-Length: "...), length, 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "Content-Location: "+location+"\r\n"...)
	b = append(b, "Content-Type: application/dicom; transfer-syntax="+ts+"\r\n\r\n"...)
	return b
}

// partsEnd is the close delimiter of a multipart body of n parts.
func partsEnd(boundary string, n int) []byte {
	if n == 0 {
		return []byte("--" + boundary + "--\r\n")
	}
	return []byte("\r\n--" + boundary + "--\r\n")
}

// sendConverted writes head and then a prepared conversion, as one part of b (the
// whole body when head is nil), and writes what b gathered when it is the whole body.
func (s *Service) sendConverted(b *body, head []byte, in *index.Instance, c *transcode.Conversion) error {
	err := b.begin(head, c.Length)
	if err == nil {
		err = s.writeConverted(b, in, c)
	}
	if err == nil {
		err = b.end()
	}
	if errors.Is(err, errPartLength) {
		s.log().Warn("dicomweb: retrieve: the stored object is not as long as recorded; the transfer is broken off", "key", in.BlobKey, "err", err)
	}
	if err == nil && head == nil {
		err = b.Flush()
	}
	return err
}

// metadata answers /metadata at study, series or instance level from the DICOM JSON
// stored in the index, with absolute BulkDataURIs, an ETag and conditional GET.
func (s *Service) metadata(c echo.Context) error {
	if !acceptsJSON(c.Request().Header.Get("Accept")) {
		return echo.NewHTTPError(http.StatusNotAcceptable, "metadata is available as application/dicom+json only")
	}
	list, err := s.instances(c, true)
	if err != nil {
		return err
	}
	root := s.root(c)
	h := sha256.New()
	io.WriteString(h, root)
	for i := range list {
		io.WriteString(h, list[i].SOPInstanceUID+"\x00"+list[i].Digest+"\x00")
	}
	etag := `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
	w := c.Response()
	w.Header().Set("ETag", etag)
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "W/")); t == etag || t == "*" {
				return c.NoContent(http.StatusNotModified)
			}
		}
	}
	w.Header().Set("Content-Type", "application/dicom+json")
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, '[')
	for i := range list {
		if i > 0 {
			buf = append(buf, ',')
		}
		m := list[i].Metadata
		if len(m) == 0 {
			m = []byte("{}")
		}
		buf = append(buf, absoluteBulkURIs(m, instanceURL(root, &list[i]))...)
		if len(buf) > 256<<10 {
			if _, err := w.Write(buf); err != nil {
				return nil
			}
			buf = buf[:0]
		}
	}
	buf = append(buf, ']')
	_, _ = w.Write(buf)
	return nil
}

// frameChoice is the negotiated media type of frames.
type frameChoice struct {
	multipart  bool
	media      string // part media type
	ts         string // transfer-syntax parameter of each part
	decompress bool   // decode compressed frames to native Explicit VR LE bytes
}

// chooseFrameMedia negotiates the representation of frames stored in ts (PS3.18
// 8.7.3.3.2): uncompressed frames as application/octet-stream in Explicit VR Little
// Endian, compressed frames as stored, either as their image media type or as
// application/octet-stream when transfer-syntax=* or the stored UID is asked for.
func chooseFrameMedia(accept, ts string, frames int) (frameChoice, bool) {
	nat := native(ts) && ts != tsExplicitBE
	label := ts
	if nat {
		label = tsExplicitLE
	}
	compressedType := frameMediaType(ts)
	for _, m := range parseAccept(accept) {
		multi := true
		inner, tsp := m.params["type"], m.params["transfer-syntax"]
		switch m.typ {
		case "multipart/related":
			if inner == "" {
				inner = "application/octet-stream"
			}
		case "*/*", "multipart/*":
			if nat {
				return frameChoice{true, "application/octet-stream", label, false}, true
			}
			if compressedType != "" {
				return frameChoice{true, compressedType, ts, false}, true
			}
			return frameChoice{true, "application/octet-stream", ts, false}, true
		default:
			if frames != 1 {
				continue
			}
			multi, inner = false, m.typ
		}
		switch {
		case inner == "application/octet-stream":
			if nat && (tsp == "" || tsp == "*" || tsp == tsExplicitLE) {
				return frameChoice{multi, inner, label, false}, true
			}
			if !nat && (tsp == "*" || tsp == ts) {
				return frameChoice{multi, inner, ts, false}, true
			}
			if !nat && (tsp == "" || tsp == tsExplicitLE) && codec.Supported(ts) {
				return frameChoice{multi, inner, tsExplicitLE, true}, true
			}
		case compressedType != "" && (inner == compressedType || inner == "image/*" || inner == "video/*" && strings.HasPrefix(compressedType, "video/")):
			if tsp == "" || tsp == "*" || tsp == ts {
				return frameChoice{multi, compressedType, ts, false}, true
			}
		}
	}
	return frameChoice{}, false
}

// parseFrameList reads "1,3,5" (1-based frame numbers). The URL length limit bounds
// its length; checkFrameList checks it against the instance.
func parseFrameList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, echo.NewHTTPError(http.StatusBadRequest, "frame numbers must be positive integers separated by commas")
		}
		out = append(out, n)
	}
	return out, nil
}

// checkFrameList refuses a frame list that names more frames than the instance has
// (frames), or a frame twice: each frame is sent at most once per request.
func checkFrameList(nums []int, frames int) error {
	if len(nums) > frames {
		return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("the frame list names %d frames; the instance has %d", len(nums), frames))
	}
	seen := make(map[int]bool, len(nums))
	for _, n := range nums {
		if seen[n] {
			return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("frame %d is listed more than once", n))
		}
		seen[n] = true
	}
	return nil
}

// frames serves /frames/{list} by ranged reads of the stored object, one frame at a
// time.
func (s *Service) frames(c echo.Context) error {
	nums, err := parseFrameList(c.Param("frames"))
	if err != nil {
		return err
	}
	in, err := s.instance(c)
	if err != nil {
		return err
	}
	if in.TransferSyntaxUID == tsDeflated {
		return s.openedFrames(c, in, nums)
	}
	if len(in.PixelLayout) == 0 {
		return echo.NewHTTPError(http.StatusNotFound, "the instance has no frames that can be served (no pixel data, or a layout that is not byte aligned)")
	}
	var pl dcm.PixelLayout
	if err := json.Unmarshal(in.PixelLayout, &pl); err != nil {
		return err
	}
	if err := checkFrameList(nums, pl.NumberOfFrames); err != nil {
		return err
	}
	if !pl.Encapsulated && pl.FrameLength == 0 {
		return s.openedFrames(c, in, nums) // bit-packed
	}
	ranges := make([][]dcm.Range, len(nums))
	for i, n := range nums {
		if ranges[i], err = pl.Frame(n - 1); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, strings.TrimPrefix(err.Error(), "dcm: "))
		}
	}
	choice, ok := chooseFrameMedia(c.Request().Header.Get("Accept"), in.TransferSyntaxUID, len(nums))
	if !ok {
		return echo.NewHTTPError(http.StatusNotAcceptable, fmt.Sprintf("frames are stored in transfer syntax %s and transcoding is not offered; ask for multipart/related; type=\"application/octet-stream\"; transfer-syntax=*", in.TransferSyntaxUID))
	}
	ctx := c.Request().Context()
	if choice.decompress {
		return s.decompressedFrames(c, in, nums, choice)
	}
	// Open the first range before the status goes out, so a missing object is a 404/503.
	// (A frame may have no bytes at all: an encapsulated frame without fragments.)
	var first io.ReadCloser
	if len(ranges[0]) > 0 {
		if first, err = s.Store.GetRange(ctx, in.BlobKey, ranges[0][0].Offset, ranges[0][0].Length); err != nil {
			return err
		}
	}
	w := c.Response()
	partType := choice.media + "; transfer-syntax=" + choice.ts
	copyFrame := func(dst io.Writer, i int) error {
		for j, r := range ranges[i] {
			var rc io.ReadCloser
			if i == 0 && j == 0 {
				rc = first
			} else if rc, err = s.Store.GetRange(ctx, in.BlobKey, r.Offset, r.Length); err != nil {
				return err
			}
			_, err := io.Copy(dst, rc)
			rc.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	if !choice.multipart {
		w.Header().Set("Content-Type", partType)
		w.WriteHeader(http.StatusOK)
		if copyFrame(w, 0) != nil {
			abort()
		}
		return nil
	}
	mw := startMultipart(c, choice.media)
	base := instanceURL(s.root(c), in) + "/frames/"
	for i, n := range nums {
		var size int64
		for _, r := range ranges[i] {
			size += r.Length
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", partType)
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Location", base+strconv.Itoa(n))
		pw, err := mw.CreatePart(h)
		if err != nil || copyFrame(pw, i) != nil {
			abort()
		}
	}
	if mw.Close() != nil {
		abort()
	}
	return nil
}

// decompressedFrames answers /frames with compressed frames decoded to native bytes
// (Explicit VR Little Endian), one frame at a time: each is decoded, written and
// dropped before the next is read, so memory holds one frame whatever the list. The
// first frame is decoded before the status goes out, so an object the decoder cannot
// read is a clean 406; a later frame that fails to decode breaks the transfer off.
func (s *Service) decompressedFrames(c echo.Context, in *index.Instance, nums []int, choice frameChoice) error {
	ps, err := s.openPixels(c.Request().Context(), in)
	if err != nil {
		return err
	}
	first, _, err := ps.nativeFrame(nums[0] - 1)
	if err != nil {
		if errors.Is(err, errStore) {
			return err
		}
		return echo.NewHTTPError(http.StatusNotAcceptable, "frames stored as "+in.TransferSyntaxUID+" could not be decompressed ("+decodeText(err)+"); ask with transfer-syntax=*")
	}
	return s.sendFrames(c, in, nums, choice, first, func(i int) ([]byte, error) {
		b, _, err := ps.nativeFrame(i)
		return b, err
	})
}

// openedFrames answers /frames of uncompressed pixel data that are not plain byte
// ranges of the stored object: those of a deflated object, inflated forward one frame
// at a time (never whole in memory), and those of bit-packed (1-bit) pixel data that
// start on a byte boundary, the bits after the frame cleared. Both are Explicit VR
// Little Endian bytes.
func (s *Service) openedFrames(c echo.Context, in *index.Instance, nums []int) error {
	ctx := c.Request().Context()
	p, err := transcode.OpenPixels(ctx, s.Store, transcode.ObjectOf(in))
	if errors.Is(err, transcode.ErrNoConversion) {
		return echo.NewHTTPError(http.StatusNotFound, "the instance has no frames that can be served (no pixel data that can be located)")
	}
	if err != nil {
		return err
	}
	defer p.Close()
	if p.Layout.Encapsulated {
		return echo.NewHTTPError(http.StatusNotFound, "the instance has no frames that can be served (encapsulated pixel data in an uncompressed syntax)")
	}
	if err := checkFrameList(nums, p.Layout.NumberOfFrames); err != nil {
		return err
	}
	for _, n := range nums {
		if _, _, err := p.FrameRanges(n - 1); err != nil {
			return echo.NewHTTPError(http.StatusBadRequest, err.Error())
		}
	}
	choice, ok := chooseFrameMedia(c.Request().Header.Get("Accept"), tsExplicitLE, len(nums))
	if !ok {
		return echo.NewHTTPError(http.StatusNotAcceptable, `uncompressed frames are available as multipart/related; type="application/octet-stream" or application/octet-stream (Explicit VR Little Endian)`)
	}
	first, err := p.Frame(nums[0] - 1)
	if err != nil {
		return err
	}
	return s.sendFrames(c, in, nums, choice, first, p.Frame)
}

// sendFrames writes frames (the first already read; the others read by frame, 0-based)
// as the single body or the parts of a multipart answer, one at a time; a frame that
// cannot be read after the answer has begun is logged and breaks the transfer off.
func (s *Service) sendFrames(c echo.Context, in *index.Instance, nums []int, choice frameChoice, first []byte, frame func(int) ([]byte, error)) error {
	w := c.Response()
	partType := choice.media + "; transfer-syntax=" + choice.ts
	if !choice.multipart {
		w.Header().Set("Content-Type", partType)
		return c.Blob(http.StatusOK, partType, first)
	}
	mw := startMultipart(c, choice.media)
	base := instanceURL(s.root(c), in) + "/frames/"
	for i, n := range nums {
		data := first
		if i > 0 {
			var err error
			if data, err = frame(n - 1); err != nil {
				s.log().Info("dicomweb: frames: frame not read or decoded mid-response", "frame", n, "transfer_syntax", in.TransferSyntaxUID, "err", err)
				abort()
			}
		}
		first = nil
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", partType)
		h.Set("Content-Length", strconv.Itoa(len(data)))
		h.Set("Content-Location", base+strconv.Itoa(n))
		pw, err := mw.CreatePart(h)
		if err == nil {
			_, err = pw.Write(data)
		}
		if err != nil {
			abort()
		}
		w.Flush() // the frame goes out before the next is read
	}
	if mw.Close() != nil {
		abort()
	}
	return nil
}

// bulkdata serves one BulkDataURI of an instance's metadata.
func (s *Service) bulkdata(c echo.Context) error {
	in, err := s.instance(c)
	if err != nil {
		return err
	}
	path := strings.Trim(c.Param("*"), "/")
	var refs []dcm.BulkRef
	if len(in.Bulk) > 0 {
		if err := json.Unmarshal(in.Bulk, &refs); err != nil {
			return err
		}
	}
	var ref *dcm.BulkRef
	for i := range refs {
		if strings.EqualFold(refs[i].Path, path) {
			ref = &refs[i]
		}
	}
	if ref == nil {
		return echo.NewHTTPError(http.StatusNotFound, "no such bulk data in this instance")
	}
	multi := true
	for _, m := range parseAccept(c.Request().Header.Get("Accept")) {
		if m.typ == "multipart/related" || m.typ == "*/*" {
			break
		}
		if m.typ == "application/octet-stream" {
			multi = false
			break
		}
	}
	rc, err := s.Store.GetRange(c.Request().Context(), in.BlobKey, ref.Range.Offset, ref.Range.Length)
	if err != nil {
		return err
	}
	defer rc.Close()
	w := c.Response()
	ct := "application/octet-stream"
	if ref.VR == "OB" || ref.VR == "OW" || ref.VR == "OF" || ref.VR == "OD" || ref.VR == "OL" || ref.VR == "OV" || ref.VR == "UN" {
		ct += "; transfer-syntax=" + tsExplicitLE
	}
	if !multi {
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.FormatInt(ref.Range.Length, 10))
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, rc); err != nil {
			abort()
		}
		return nil
	}
	mw := startMultipart(c, "application/octet-stream")
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(ref.Range.Length, 10))
	pw, err := mw.CreatePart(h)
	if err == nil {
		_, err = io.Copy(pw, rc)
	}
	if err != nil || mw.Close() != nil {
		abort()
	}
	return nil
}

// delete removes a study, series or instance (when AllowDelete): index rows first, then
// blobs; a blob that cannot be removed is an orphan that lumen fsck finds.
func (s *Service) delete(c echo.Context) error {
	if !s.AllowDelete {
		c.Response().Header().Set("Allow", "GET, HEAD")
		return echo.NewHTTPError(http.StatusMethodNotAllowed, "deletion is disabled on this server (dicomweb.allow_delete)")
	}
	list, err := s.instances(c, false)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	for i := range list {
		old, err := s.Index.DeleteInstance(ctx, list[i].SOPInstanceUID)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.Store.Delete(ctx, old.BlobKey); err != nil {
			s.log().Warn("dicomweb: delete: blob not removed; lumen fsck will find it", "key", old.BlobKey, "err", err)
		}
		s.DropThumbnails(ctx, old.SOPInstanceUID)
	}
	s.log().Info("dicomweb: deleted", "path", c.Path(), "instances", len(list))
	return c.NoContent(http.StatusNoContent)
}
