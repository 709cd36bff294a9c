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
	"strings"

	"github.com/lumenpacs/lumen/archive"
	"github.com/lumenpacs/lumen/dimse"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/service/transcode"
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
var ErrNoRepresentation = errors.New("send: no accepted transfer syntax can carry the instance")

// NoRepresentation is the error of an instance stored in stored that none of the
// accepted syntaxes can carry.
func NoRepresentation(stored string, accepted []string) error {
	return fmt.Errorf("%w (stored in %s; accepted %s)", ErrNoRepresentation, stored, strings.Join(accepted, ", "))
}

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
// its SOP class (one per accepted presentation context): as stored, else Explicit VR
// Little Endian, Implicit VR Little Endian or Deflated Explicit VR Little Endian, the
// first accepted that the object can be converted to (transcode.Choose). It returns ""
// when none fits.
func Choose(stored string, accepted []string) string { return transcode.Choose(stored, accepted) }

// Open returns the data set of an instance (without meta information) in transfer
// syntax ts, which Choose returned: the stored bytes, read from the store, or a
// conversion streamed through a pipe as it is produced. A conversion that cannot be done fails here, before a byte
// is read (transcode.Prepare and CheckFrames: *transcode.ConversionError with the
// reason, a frame that does not decode included; or *transcode.StoreError); should a
// frame still fail later, the stream breaks off with a *transcode.FrameError, which is
// logged.
func (s *Sender) Open(ctx context.Context, in *index.Instance, ts string) (io.ReadCloser, error) {
	c, err := transcode.Prepare(ctx, s.Store, transcode.ObjectOf(in), ts)
	if err != nil {
		return nil, err
	}
	// A C-STORE data set cannot be broken off midway but by aborting the association:
	// every frame of a compressed object is decoded once before it is sent.
	if err := c.CheckFrames(); err != nil {
		c.Close()
		return nil, err
	}
	// As stored: read straight from the store.
	if r, ok, err := c.DataSetReader(); ok {
		if err != nil {
			c.Close()
			return nil, err
		}
		return readCloser{r, c}, nil
	}
	pr, pw := io.Pipe()
	go func() {
		err := c.WriteDataSet(pw)
		c.Close()
		var fe *transcode.FrameError
		if errors.As(err, &fe) && s.Logger != nil {
			s.Logger.Warn("send: a frame did not decode during the transfer; the transfer is broken off",
				"sop_class", in.SOPClassUID, "transfer_syntax", in.TransferSyntaxUID, "to", ts, "frame", fe.Frame, "err", fe.Err)
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// readCloser is a reader and what closes it.
type readCloser struct {
	io.Reader
	io.Closer
}

// Reason is the short reason, for a DIMSE error comment, why an instance was not sent.
func Reason(err error) string {
	var ce *transcode.ConversionError
	var se *transcode.StoreError
	switch {
	case errors.As(err, &ce):
		return ce.Reason
	case errors.As(err, &se):
		return "the stored object could not be read"
	}
	return strings.TrimPrefix(err.Error(), "send: ")
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
			r.Err = NoRepresentation(in.TransferSyntaxUID, c.Accepted(in.SOPClassUID))
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

// String is the result as one line of `lumen send`: OK, WARNING or FAILED, the SOP
// Instance UID, and the status, reason or transfer syntax.
func (r Result) String() string {
	switch {
	case r.Err != nil:
		return "FAILED  " + r.SOPInstanceUID + ": " + r.Err.Error()
	case r.Failed():
		return fmt.Sprintf("FAILED  %s: status 0x%04X %s", r.SOPInstanceUID, r.Status.Code, r.Status.ErrorComment)
	case r.Warning():
		return fmt.Sprintf("WARNING %s: status 0x%04X %s (%s)", r.SOPInstanceUID, r.Status.Code, r.Status.ErrorComment, r.TransferSyntax)
	}
	return "OK      " + r.SOPInstanceUID + " (" + r.TransferSyntax + ")"
}
