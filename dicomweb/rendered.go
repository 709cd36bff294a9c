package dicomweb

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/disintegration/imaging"
	"github.com/labstack/echo/v4"
	"github.com/lumenpacs/lumen/dcm"
	"github.com/lumenpacs/lumen/dcm/codec"
	"github.com/lumenpacs/lumen/index"
	"github.com/lumenpacs/lumen/render"
	"github.com/lumenpacs/lumen/render/jpegenc"
	"github.com/lumenpacs/lumen/service/transcode"
)

// Thumbnail defaults (PS3.18 10.4.1.1.4 leaves the size to the server).
const thumbnailSize = 128

// renderRequest holds the parsed rendering parameters (PS3.18 8.3.5.1).
type renderRequest struct {
	media    string       // image/jpeg, image/png or image/gif; "" when only a document type was asked for
	explicit bool         // the media type was asked for
	accept   []mediaRange // the media ranges asked for (nil: anything)
	quality  int
	vw, vh   int
	crop     *image.Rectangle
	window   *render.Window
}

func parseRenderRequest(c echo.Context, thumbnail bool) (*renderRequest, error) {
	r := &renderRequest{media: "image/jpeg", quality: 90}
	if thumbnail {
		r.vw, r.vh = thumbnailSize, thumbnailSize
	}
	accept := c.QueryParam("accept")
	if accept == "" {
		accept = c.Request().Header.Get("Accept")
	}
	if accept != "" {
		found := false
		r.accept = parseAccept(accept)
		for _, m := range r.accept {
			for _, t := range []string{"image/jpeg", "image/png", "image/gif"} {
				if m.accepts(t) {
					r.media, found = t, true
					r.explicit = m.typ != "*/*"
					break
				}
			}
			if found {
				break
			}
		}
		if !found && (thumbnail || !r.accepts("text/html") && !r.accepts("application/pdf")) {
			return nil, echo.NewHTTPError(http.StatusNotAcceptable, "rendered images are available as image/jpeg, image/png or image/gif")
		}
		if !found {
			r.media = "" // a report or a document only (see Service.document)
		}
	}
	if q := c.QueryParam("quality"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 100 {
			return nil, echo.NewHTTPError(http.StatusBadRequest, "quality must be an integer from 1 to 100")
		}
		r.quality = n
	}
	if v := c.QueryParam("viewport"); v != "" {
		var nums []int
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return nil, echo.NewHTTPError(http.StatusBadRequest, "viewport must be vw,vh[,sx,sy,sw,sh] integers")
			}
			nums = append(nums, n)
		}
		if (len(nums) != 2 && len(nums) != 6) || nums[0] <= 0 || nums[1] <= 0 || nums[0] > 4096 || nums[1] > 4096 {
			return nil, echo.NewHTTPError(http.StatusBadRequest, "viewport must be vw,vh[,sx,sy,sw,sh] with 0 < vw, vh <= 4096")
		}
		r.vw, r.vh = nums[0], nums[1]
		if len(nums) == 6 {
			rect := image.Rect(nums[2], nums[3], nums[2]+nums[4], nums[3]+nums[5]).Canon()
			r.crop = &rect
		}
	}
	if w := c.QueryParam("window"); w != "" {
		f := strings.Split(w, ",")
		if len(f) != 3 {
			return nil, echo.NewHTTPError(http.StatusBadRequest, "window must be center,width,function (linear, linear-exact or sigmoid)")
		}
		center, err1 := strconv.ParseFloat(f[0], 64)
		width, err2 := strconv.ParseFloat(f[1], 64)
		fn := map[string]string{"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}[strings.ToLower(f[2])]
		if err1 != nil || err2 != nil || width <= 0 || fn == "" || math.IsInf(center, 0) || math.IsNaN(center) || math.IsInf(width, 0) || math.IsNaN(width) {
			return nil, echo.NewHTTPError(http.StatusBadRequest, "window must be center,width,function with width > 0 and function linear, linear-exact or sigmoid")
		}
		r.window = &render.Window{Center: center, Width: width, Function: fn}
	}
	return r, nil
}

// pixelSource is an instance opened for rendering: its header parsed once, frames read
// by range.
type pixelSource struct {
	s        *Service
	ctx      context.Context
	in       *index.Instance
	file     *dcm.File
	layout   dcm.PixelLayout
	inflated []byte // the inflated data set of a deflated object, which frames are read from
}

// openPixels reads the instance's header (up to the pixel data when the layout says
// where it starts; the whole object for layouts recorded before that).
func (s *Service) openPixels(ctx context.Context, in *index.Instance) (*pixelSource, error) {
	if in.TransferSyntaxUID == dcm.DeflatedExplicitVRLittleEndian {
		return s.openDeflated(ctx, in)
	}
	if len(in.PixelLayout) == 0 {
		return nil, fmt.Errorf("%w: the instance has no pixel data that can be located", render.ErrUnsupported)
	}
	ps := &pixelSource{s: s, ctx: ctx, in: in}
	if err := json.Unmarshal(in.PixelLayout, &ps.layout); err != nil {
		return nil, err
	}
	var rc io.ReadCloser
	var err error
	if ps.layout.HeaderEnd > 0 {
		rc, err = s.Store.GetRange(ctx, in.BlobKey, 0, ps.layout.HeaderEnd)
	} else {
		rc, _, err = s.Store.Get(ctx, in.BlobKey)
	}
	if err != nil {
		return nil, storeFailed(err)
	}
	defer rc.Close()
	if ps.file, err = dcm.Parse(rc, &dcm.Options{BulkThreshold: 4 << 20}); err != nil {
		return nil, err
	}
	return ps, nil
}

// frame renders frame i (0-based; -1: the representative frame).
func (ps *pixelSource) frame(i int, o render.Options) (image.Image, error) {
	if i < 0 {
		i = representativeFrame(ps.file.Dataset, ps.layout.NumberOfFrames)
	}
	return render.Frame(ps.file.Dataset, ps.file.TransferSyntax, &ps.layout, i, ps.readRange, o)
}

// readRange reads stored bytes of the object (of its inflated data set when deflated).
func (ps *pixelSource) readRange(off, n int64) ([]byte, error) {
	if ps.inflated != nil {
		if off < 0 || off+n > int64(len(ps.inflated)) {
			return nil, fmt.Errorf("render: frame beyond the inflated data set")
		}
		return ps.inflated[off : off+n], nil
	}
	return ps.s.readRange(ps.ctx, ps.in.BlobKey, off, n)
}

// nativeFrame decodes frame i to uncompressed pixel data (Explicit VR Little Endian) and
// says the colour model the decoder produced.
func (ps *pixelSource) nativeFrame(i int) ([]byte, string, error) {
	return transcode.NativeFrame(ps.file, &ps.layout, i, ps.readRange)
}

// maxInflated caps the inflated data set of a deflated object rendered in memory.
const maxInflated = 512 << 20

// openDeflated inflates a Deflated Explicit VR Little Endian object (rare; its offsets
// refer to the inflated stream) into memory and renders from there.
func (s *Service) openDeflated(ctx context.Context, in *index.Instance) (*pixelSource, error) {
	rc, _, err := s.Store.Get(ctx, in.BlobKey)
	if err != nil {
		return nil, storeFailed(err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxInflated))
	if err != nil {
		return nil, storeFailed(err)
	}
	meta, err := dcm.Parse(bytes.NewReader(raw), nil)
	if err != nil {
		return nil, err
	}
	inflated, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw[meta.DatasetOffset:])), maxInflated))
	if err != nil {
		return nil, fmt.Errorf("%w: deflated data set: %w", render.ErrUnsupported, err)
	}
	f, err := dcm.ParseDataset(bytes.NewReader(inflated), dcm.ExplicitVRLittleEndian, 0, &dcm.Options{BulkThreshold: 4 << 20})
	if err != nil {
		return nil, err
	}
	pl := f.PixelLayout()
	if pl == nil {
		return nil, fmt.Errorf("%w: the instance has no pixel data that can be located", render.ErrUnsupported)
	}
	return &pixelSource{s: s, ctx: ctx, in: in, file: f, layout: *pl, inflated: inflated}, nil
}

// renderInstance renders frame (0-based; -1 the representative frame) of an instance.
func (s *Service) renderInstance(ctx context.Context, in *index.Instance, frame int, o render.Options) (image.Image, error) {
	ps, err := s.openPixels(ctx, in)
	if err != nil {
		return nil, err
	}
	return ps.frame(frame, o)
}

// representativeFrame is RepresentativeFrameNumber (0028,6010) when valid, else the
// middle frame (0-based).
func representativeFrame(ds *dcm.Dataset, frames int) int {
	if v, ok := ds.Int(dcm.NewTag(0x0028, 0x6010)); ok && v >= 1 && int(v) <= frames {
		return int(v) - 1
	}
	return frames / 2
}

// placeholder is the picture sent for objects that cannot be rendered.
func placeholder(w, h int) image.Image {
	img := image.NewGray(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{color.Gray{Y: 48}}, image.Point{}, draw.Src)
	for i := 0; i < min(w, h); i++ {
		img.SetGray(i, i*h/max(w, 1), color.Gray{Y: 96})
		img.SetGray(w-1-i, i*h/max(w, 1), color.Gray{Y: 96})
	}
	return img
}

// encodeImage fits img into the request's viewport and encodes it.
func encodeImage(img image.Image, r *renderRequest) ([]byte, error) {
	if r.crop != nil {
		img = imaging.Crop(img, *r.crop)
	}
	if r.vw > 0 && r.vh > 0 && (img.Bounds().Dx() > r.vw || img.Bounds().Dy() > r.vh || r.crop != nil) {
		img = imaging.Fit(img, r.vw, r.vh, imaging.Linear)
	}
	var buf bytes.Buffer
	var err error
	switch r.media {
	case "image/png":
		err = pngEncoder.Encode(&buf, img)
	case "image/gif":
		err = gif.Encode(&buf, img, &gif.Options{NumColors: 256})
	default:
		err = jpegenc.Encode(&buf, img, r.quality)
	}
	return buf.Bytes(), err
}

// pngEncoder writes rendered PNGs at zlib's fastest level, its buffers reused.
var pngEncoder = &png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngBuffers{}}

// pngBuffers is a png.EncoderBufferPool over a sync.Pool.
type pngBuffers struct{ p sync.Pool }

func (b *pngBuffers) Get() *png.EncoderBuffer {
	v, _ := b.p.Get().(*png.EncoderBuffer)
	return v
}

func (b *pngBuffers) Put(v *png.EncoderBuffer) { b.p.Put(v) }

// writeImage answers with an encoded picture, its ETag and caching headers.
func writeImage(c echo.Context, v cachedImage, etagSeed string, warning string) error {
	h := sha256.Sum256([]byte(etagSeed))
	etag := `"` + hex.EncodeToString(h[:12]) + `"`
	w := c.Response()
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	if warning != "" {
		addWarning(c, warning)
	}
	if inm := c.Request().Header.Get("If-None-Match"); inm != "" && warning == "" && strings.Contains(inm, etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, v.media, v.data)
}

// picture is a rendering ready to send: the encoded image, the seed of its ETag, and a
// warning when it is the placeholder.
type picture struct {
	img     cachedImage
	seed    string
	warning string
}

// thumbnailOrRendered renders one frame (thumbnails through the cache); an object
// without a picture gives the placeholder and a warning for thumbnails, and an error
// wrapping render.ErrUnsupported otherwise.
func (s *Service) thumbnailOrRendered(ctx context.Context, in *index.Instance, frame int, r *renderRequest, thumbnail bool) (*picture, error) {
	if isWaveform(in.SOPClassUID) && !r.explicit {
		r.media = "image/png" // lines on a grid: no JPEG ringing
	}
	seed := fmt.Sprintf("%s|%s|%d|%s|%d|%dx%d|%v|%v|%v", in.SOPInstanceUID, in.Digest, frame, r.media, r.quality, r.vw, r.vh, r.crop, r.window, thumbnail)
	var key string
	if thumbnail {
		key = thumbKey(in.SOPInstanceUID, seed)
		if v, ok := s.cachedThumbnail(ctx, key); ok {
			return &picture{img: v, seed: seed}, nil
		}
	}
	var img image.Image
	var err error
	if isWaveform(in.SOPClassUID) {
		img, err = s.waveformImage(ctx, in)
	} else {
		img, err = s.renderInstance(ctx, in, frame, render.Options{Window: r.window})
	}
	if err != nil {
		if errors.Is(err, errStore) || errors.Is(err, index.ErrNotFound) || errors.Is(err, context.Canceled) {
			return nil, err // the archive failed (503, or 404): not the object's fault
		}
		s.log().Info("dicomweb: cannot render", "sop_class", in.SOPClassUID, "transfer_syntax", in.TransferSyntaxUID, "reason", err)
		if !thumbnail {
			return nil, fmt.Errorf("%w: %s", render.ErrUnsupported, strings.TrimPrefix(decodeText(err), "no decoder: "))
		}
		size := thumbnailSize
		if r.vw > 0 {
			size = min(r.vw, r.vh)
		}
		data, err2 := encodeImage(placeholder(size, size), r)
		if err2 != nil {
			return nil, err2
		}
		return &picture{img: cachedImage{media: r.media, data: data}, seed: seed + "|placeholder", warning: "no picture: " + decodeText(err)}, nil
	}
	data, err := encodeImage(img, r)
	if err != nil {
		return nil, err
	}
	v := cachedImage{media: r.media, data: data}
	if thumbnail {
		s.keepThumbnail(key, v)
	}
	return &picture{img: v, seed: seed}, nil
}

// accepts reports whether the request accepts media type typ (no Accept: anything).
func (r *renderRequest) accepts(typ string) bool {
	if r.accept == nil {
		return true
	}
	for _, m := range r.accept {
		if m.accepts(typ) {
			return true
		}
	}
	return false
}

// renderedOrPlaceholder renders and sends one frame; an object without a picture gets
// the placeholder and a Warning (thumbnails) or 406 (rendered).
func (s *Service) renderedOrPlaceholder(c echo.Context, in *index.Instance, frame int, r *renderRequest, thumbnail bool) error {
	if r.media == "" {
		return echo.NewHTTPError(http.StatusNotAcceptable, "this object is an image: rendered images are available as image/jpeg, image/png or image/gif")
	}
	p, err := s.thumbnailOrRendered(c.Request().Context(), in, frame, r, thumbnail)
	if errors.Is(err, render.ErrUnsupported) {
		return echo.NewHTTPError(http.StatusNotAcceptable, "this object cannot be rendered: "+strings.TrimPrefix(err.Error(), "render: no decoder: "))
	}
	if err != nil {
		return err
	}
	return writeImage(c, p.img, p.seed, p.warning)
}

// renderedInstance answers .../instances/{i}/rendered and /thumbnail, and the
// /frames/{n}/rendered and /thumbnail resources.
func (s *Service) renderedInstance(thumbnail bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		r, err := parseRenderRequest(c, thumbnail)
		if err != nil {
			return err
		}
		in, err := s.instance(c)
		if err != nil {
			return err
		}
		frame := 0
		if thumbnail {
			frame = -1 // the representative frame
		}
		if fl := c.Param("frames"); fl != "" {
			nums, err := parseFrameList(fl)
			if err != nil {
				return err
			}
			if err := checkFrameList(nums, max(in.NumberOfFrames, 1)); err != nil {
				return err
			}
			frame = nums[0] - 1
			if in.NumberOfFrames > 0 && frame >= max(in.NumberOfFrames, 1) {
				return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf("frame %d out of range (1..%d)", frame+1, in.NumberOfFrames))
			}
		} else if !thumbnail && r.media == "image/gif" && in.NumberOfFrames > 1 {
			return s.cine(c, in, r)
		} else if !thumbnail {
			if ok, err := s.document(c, in, r); ok {
				return err
			}
		}
		return s.renderedOrPlaceholder(c, in, frame, r, thumbnail)
	}
}

// renderedSeries answers the study and series /rendered resources (PS3.18 10.4): one
// multipart/related part per image instance, in index order (series, then instance
// number), each the rendering of its first frame in the requested media type, with a
// Content-Location naming the instance's own rendered resource. Instances without a
// picture (SR, documents, waveforms, a transfer syntax or pixel format without a
// decoder) are left out and counted in a Warning; none left is 406. Parts are rendered
// and sent one at a time, so the response is never held whole.
func (s *Service) renderedSeries(c echo.Context) error {
	r, err := parseRenderRequest(c, false)
	if err != nil {
		return err
	}
	list, err := s.instances(c, false)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var todo []index.Instance
	skipped := 0
	for _, in := range list {
		if in.Rows > 0 && !isWaveform(in.SOPClassUID) && codec.Supported(in.TransferSyntaxUID) {
			todo = append(todo, in)
		} else {
			skipped++
		}
	}
	var mw *multipart.Writer
	root := s.root(c)
	for i := range todo {
		full, err := s.Index.Instance(ctx, todo[i].SOPInstanceUID)
		var p *picture
		if err == nil {
			p, err = s.thumbnailOrRendered(ctx, full, 0, r, false)
		}
		if err != nil {
			if ctx.Err() != nil || mw == nil && !errors.Is(err, render.ErrUnsupported) {
				return err // the archive failed before anything was sent
			}
			// Left out: counted in the Warning while the headers are not sent yet,
			// only logged after.
			skipped++
			s.log().Info("dicomweb: rendered series: instance left out", "transfer_syntax", todo[i].TransferSyntaxUID, "err", err)
			continue
		}
		if mw == nil {
			if skipped > 0 {
				addWarning(c, fmt.Sprintf("%d of %d instances have no picture and are not included", skipped, len(list)))
			}
			mw = startMultipart(c, r.media)
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", p.img.media)
		h.Set("Content-Location", instanceURL(root, full)+"/rendered")
		pw, err := mw.CreatePart(h)
		if err == nil {
			_, err = pw.Write(p.img.data)
		}
		if err != nil {
			return nil // the client went away
		}
	}
	if mw == nil {
		return echo.NewHTTPError(http.StatusNotAcceptable, fmt.Sprintf("none of the %d instances can be rendered as an image (no pixel data, or no decoder for their transfer syntax)", len(list)))
	}
	mw.Close()
	return nil
}

// nonImageModalities are skipped when choosing a study's thumbnail series.
var nonImageModalities = []string{"SR", "KO", "PR", "SEG", "DOC", "REG", "RTSTRUCT", "RTPLAN", "RTDOSE", "OT_DOC"}

// thumbnailSeries answers the series and study /thumbnail resources (SPEC-NOTES §D):
// series → the middle instance by InstanceNumber; study → the first image series by
// SeriesNumber, skipping SR, KO, PR, SEG and documents; localizers are skipped when
// another series exists.
func (s *Service) thumbnailSeries(c echo.Context) error {
	r, err := parseRenderRequest(c, true)
	if err != nil {
		return err
	}
	list, err := s.instances(c, false)
	if err != nil {
		return err
	}
	series := c.Param("series")
	if series == "" {
		// Group by series in index order (SeriesNumber), pick the first image series.
		type grp struct {
			uid      string
			modality string
			desc     string
			items    []index.Instance
		}
		var groups []*grp
		by := map[string]*grp{}
		for _, in := range list {
			g := by[in.SeriesInstanceUID]
			if g == nil {
				g = &grp{uid: in.SeriesInstanceUID, modality: in.Modality, desc: strings.ToLower(in.SeriesDescription)}
				by[in.SeriesInstanceUID] = g
				groups = append(groups, g)
			}
			g.items = append(g.items, in)
		}
		var pick *grp
		for pass := 0; pass < 3 && pick == nil; pass++ {
			for _, g := range groups {
				img := !slices.Contains(nonImageModalities, g.modality) && g.items[0].Rows > 0 || pass == 2
				localizer := strings.Contains(g.desc, "localizer") || strings.Contains(g.desc, "scout") || strings.Contains(g.desc, "topogram")
				if img && (pass > 0 || !localizer) {
					pick = g
					break
				}
			}
		}
		list = pick.items
	}
	in := list[len(list)/2]
	full, err := s.Index.Instance(c.Request().Context(), in.SOPInstanceUID)
	if err != nil {
		return err
	}
	return s.renderedOrPlaceholder(c, full, -1, r, true)
}

// decodeText is a decoder's or renderer's error without its package prefix, for the
// reason given to clients.
func decodeText(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "render: "), "codec: ")
}
