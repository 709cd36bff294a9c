package send

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/archive/dcm"
	"github.com/lumenpacs/lumen/archive/transcode"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/viewer/render"
)

// Store is what sending needs from the archive store.
type Store interface {
	Get(ctx context.Context, key string) (io.ReadCloser, archive.ObjectInfo, error)
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
}

// Destination is a DICOM storage SCP.
type Destination struct {
	AETitle string
	Host    string
	Port    int
	// TLS, when set, makes the association DICOM TLS.
	TLS *tls.Config
}

// Addr is the destination's host:port.
func (d Destination) Addr() string { return d.Host + ":" + strconv.Itoa(d.Port) }

// Result is the outcome of sending one instance.
type Result struct {
	SOPInstanceUID string
	// TransferSyntax is the syntax the instance was sent in ("" when not sent).
	TransferSyntax string
	// Status is the destination's answer (when the instance was sent).
	Status dimse.Status
	// Err is why the instance could not be sent (no context, no decoder, connection).
	Err error
}

// Failed reports a sub-operation that failed.
func (r Result) Failed() bool {
	return r.Err != nil || r.Status.Code != dimse.StatusSuccess && r.Status.Code&0xF000 != 0xB000
}

// Warning reports a sub-operation that succeeded with a warning (0xBxxx).
func (r Result) Warning() bool { return r.Err == nil && r.Status.Code&0xF000 == 0xB000 }

// ErrNoRepresentation means the instance cannot be sent in any accepted syntax.
var ErrNoRepresentation = errors.New("send: the destination accepted none of the syntaxes the instance can be sent in")

// Sender sends instances. The zero value needs Store set.
type Sender struct {
	Store Store
	// CallingAETitle is Lumen's AE title on outgoing associations (default "LUMEN").
	CallingAETitle string
	// Logger receives operational messages (no patient data above Debug).
	Logger *slog.Logger
}

// Options are per-send settings.
type Options struct {
	// MoveOriginatorAETitle and MoveOriginatorMessageID are set on C-STORE sub-operations
	// of a C-MOVE.
	MoveOriginatorAETitle   string
	MoveOriginatorMessageID uint16
}

// Contexts returns the presentation contexts to propose for instances: for each SOP
// class, one context per stored transfer syntax (as stored) and one with Explicit and
// Implicit VR Little Endian (for conversion).
func Contexts(list []index.Instance) []dimse.ProposedContext {
	byClass := map[string][]string{}
	for _, in := range list {
		if !slices.Contains(byClass[in.SOPClassUID], in.TransferSyntaxUID) {
			byClass[in.SOPClassUID] = append(byClass[in.SOPClassUID], in.TransferSyntaxUID)
		}
	}
	classes := make([]string, 0, len(byClass))
	for c := range byClass {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	var out []dimse.ProposedContext
	for _, c := range classes {
		for _, ts := range byClass[c] {
			if ts != dimse.ExplicitVRLittleEndian && ts != dimse.ImplicitVRLittleEndian {
				out = append(out, dimse.ProposedContext{AbstractSyntax: c, TransferSyntaxes: []string{ts}})
			}
		}
		out = append(out, dimse.ProposedContext{AbstractSyntax: c, TransferSyntaxes: []string{dimse.ExplicitVRLittleEndian, dimse.ImplicitVRLittleEndian}})
	}
	if len(out) > 128 { // the upper layer's limit: one context per class
		out = out[:0]
		for _, c := range classes {
			out = append(out, dimse.ProposedContext{AbstractSyntax: c, TransferSyntaxes: append(slices.Clone(byClass[c]), dimse.ExplicitVRLittleEndian, dimse.ImplicitVRLittleEndian)})
		}
	}
	return out
}

// Choose picks how to send an instance stored in stored given the syntaxes accepted for
// its SOP class: as stored, else Explicit VR Little Endian when the object can be
// converted to it (Implicit VR LE rewritten; compressed pixel data decoded). It returns
// "" when none fits (Explicit VR Big Endian and deflated objects go as stored only).
func Choose(stored string, accepted []string) string {
	switch {
	case slices.Contains(accepted, stored):
		return stored
	case !slices.Contains(accepted, dimse.ExplicitVRLittleEndian):
		return ""
	case stored == dimse.ImplicitVRLittleEndian:
		return dimse.ExplicitVRLittleEndian
	case stored == dimse.ExplicitVRBigEndian || stored == dimse.DeflatedExplicitVRLE:
		return "" // sent as stored only
	case render.Supported(stored):
		return dimse.ExplicitVRLittleEndian // compressed, and a decoder exists
	}
	return ""
}

// Open returns the data set of an instance (without meta information) in transfer
// syntax ts, which Choose returned: the stored bytes, or a conversion streamed through
// a pipe as it is produced.
func (s *Sender) Open(ctx context.Context, in *index.Instance, ts string) (io.ReadCloser, error) {
	rc, _, err := s.Store.Get(ctx, in.BlobKey)
	if err != nil {
		return nil, err
	}
	if ts == in.TransferSyntaxUID {
		if _, err := transcode.SkipMeta(rc); err != nil {
			rc.Close()
			return nil, err
		}
		return rc, nil
	}
	if ts != dimse.ExplicitVRLittleEndian {
		rc.Close()
		return nil, fmt.Errorf("%w: %s from %s", ErrNoRepresentation, ts, in.TransferSyntaxUID)
	}
	f, err := dcm.Parse(rc, &dcm.Options{BulkThreshold: 4 << 20})
	rc.Close()
	if err != nil {
		return nil, err
	}
	read := func(off, n int64) ([]byte, error) {
		r, err := s.Store.GetRange(ctx, in.BlobKey, off, n)
		if err != nil {
			return nil, err
		}
		defer r.Close()
		return io.ReadAll(r)
	}
	var write func(w io.Writer) error
	switch {
	case f.Deflated:
		return nil, fmt.Errorf("%w: deflated objects are sent as stored only", ErrNoRepresentation)
	case in.TransferSyntaxUID == dimse.ImplicitVRLittleEndian:
		write = func(w io.Writer) error {
			return dcm.TranscodeToExplicit(w, f, func(off, n int64) (io.ReadCloser, error) { return s.Store.GetRange(ctx, in.BlobKey, off, n) })
		}
	default:
		pl := f.PixelLayout()
		if pl == nil {
			return nil, fmt.Errorf("%w: the pixel data cannot be located", ErrNoRepresentation)
		}
		// Decode the first frame now: an object that cannot be decoded fails before
		// its C-STORE-RQ is sent.
		if _, _, err := transcode.NativeFrame(f, pl, 0, read); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNoRepresentation, err)
		}
		write = func(w io.Writer) error { return transcode.WriteDecompressed(w, f, pl, read) }
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	if _, err := transcode.SkipMeta(pr); err != nil {
		pr.CloseWithError(err)
		return nil, err
	}
	return pr, nil
}

// Send opens one association to dst and sends the instances in order, calling each
// (when not nil) after every instance; each returning an error stops the send (a
// C-CANCEL). It returns an error when the association cannot be opened or breaks; the
// instances not sent then have not been passed to each.
func (s *Sender) Send(ctx context.Context, dst Destination, list []index.Instance, opt Options, each func(Result) error) error {
	if len(list) == 0 {
		return nil
	}
	c, err := dimse.Dial(ctx, dst.Addr(), dimse.DialConfig{CallingAETitle: s.CallingAETitle, CalledAETitle: dst.AETitle, Contexts: Contexts(list), TLS: dst.TLS})
	if err != nil {
		return fmt.Errorf("send: association with %s at %s: %w", dst.AETitle, dst.Addr(), err)
	}
	defer func() {
		if c != nil {
			c.Release()
		}
	}()
	for i := range list {
		in := &list[i]
		r := Result{SOPInstanceUID: in.SOPInstanceUID}
		r.TransferSyntax = Choose(in.TransferSyntaxUID, c.Accepted(in.SOPClassUID))
		if len(c.Accepted(in.SOPClassUID)) == 0 {
			r.Err = fmt.Errorf("the destination does not accept SOP class %s", in.SOPClassUID)
			r.TransferSyntax = ""
		} else if r.TransferSyntax == "" {
			r.Err = fmt.Errorf("%w: stored %s, accepted %v", ErrNoRepresentation, in.TransferSyntaxUID, c.Accepted(in.SOPClassUID))
		} else {
			var data io.ReadCloser
			if data, r.Err = s.Open(ctx, in, r.TransferSyntax); r.Err == nil {
				r.Status, r.Err = c.StoreWithOriginator(ctx, in.SOPClassUID, in.SOPInstanceUID, r.TransferSyntax, data, opt.MoveOriginatorAETitle, opt.MoveOriginatorMessageID)
				data.Close()
				if r.Err != nil && !errors.Is(r.Err, dimse.ErrNoContext) {
					c = nil // the association is broken
					return fmt.Errorf("send: %s: %w", dst.AETitle, r.Err)
				}
			}
		}
		if r.Err != nil && s.Logger != nil {
			s.Logger.Info("send: instance not sent", "destination", dst.AETitle, "sop_class", in.SOPClassUID, "transfer_syntax", in.TransferSyntaxUID, "reason", r.Err)
		}
		if each != nil {
			if err := each(r); err != nil {
				return err
			}
		}
	}
	return nil
}
