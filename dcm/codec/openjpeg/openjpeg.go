//go:build cgo && openjpeg

package openjpeg

/*
#cgo pkg-config: libopenjp2
#include <openjpeg.h>
#include <stdlib.h>
#include <string.h>

// A code stream in memory, read through OpenJPEG's stream callbacks.
typedef struct {
	const unsigned char *data;
	OPJ_SIZE_T len, pos;
} lumen_buf;

static OPJ_SIZE_T lumen_read(void *dst, OPJ_SIZE_T n, void *u) {
	lumen_buf *b = u;
	if (b->pos >= b->len) return (OPJ_SIZE_T)-1;
	if (n > b->len - b->pos) n = b->len - b->pos;
	memcpy(dst, b->data + b->pos, n);
	b->pos += n;
	return n;
}

static OPJ_OFF_T lumen_skip(OPJ_OFF_T n, void *u) {
	lumen_buf *b = u;
	if (n < 0) {
		if ((OPJ_SIZE_T)(-n) > b->pos) n = -(OPJ_OFF_T)b->pos;
	} else if ((OPJ_SIZE_T)n > b->len - b->pos) {
		n = (OPJ_OFF_T)(b->len - b->pos);
	}
	b->pos += n;
	return n;
}

static OPJ_BOOL lumen_seek(OPJ_OFF_T n, void *u) {
	lumen_buf *b = u;
	if (n < 0 || (OPJ_SIZE_T)n > b->len) return OPJ_FALSE;
	b->pos = (OPJ_SIZE_T)n;
	return OPJ_TRUE;
}

// One decoding: the codec, its stream and image, and the first error OpenJPEG reported.
typedef struct {
	opj_codec_t *codec;
	opj_stream_t *stream;
	opj_image_t *image;
	lumen_buf buf;
	char msg[256];
} lumen_dec;

static void lumen_error(const char *m, void *u) {
	lumen_dec *d = u;
	if (d->msg[0] == 0) {
		strncpy(d->msg, m, sizeof d->msg - 1);
		size_t n = strlen(d->msg);
		if (n > 0 && d->msg[n-1] == '\n') d->msg[n-1] = 0;
	}
}

static void lumen_quiet(const char *m, void *u) { (void)m; (void)u; }

// lumen_open reads the main header; 1 on success.
static int lumen_open(lumen_dec *d, const unsigned char *data, size_t len) {
	static const unsigned char jp2[12] = {0, 0, 0, 0x0c, 'j', 'P', ' ', ' ', 0x0d, 0x0a, 0x87, 0x0a};
	opj_dparameters_t params;
	d->buf.data = data;
	d->buf.len = len;
	d->codec = opj_create_decompress(len >= 12 && memcmp(data, jp2, 12) == 0 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
	if (!d->codec) return 0;
	opj_set_error_handler(d->codec, lumen_error, d);
	opj_set_warning_handler(d->codec, lumen_quiet, NULL);
	opj_set_info_handler(d->codec, lumen_quiet, NULL);
	opj_set_default_decoder_parameters(&params);
	if (!opj_setup_decoder(d->codec, &params)) return 0;
	d->stream = opj_stream_default_create(OPJ_TRUE);
	if (!d->stream) return 0;
	opj_stream_set_user_data(d->stream, &d->buf, NULL);
	opj_stream_set_user_data_length(d->stream, len);
	opj_stream_set_read_function(d->stream, lumen_read);
	opj_stream_set_skip_function(d->stream, lumen_skip);
	opj_stream_set_seek_function(d->stream, lumen_seek);
	return opj_read_header(d->stream, d->codec, &d->image);
}

static int lumen_decode(lumen_dec *d) {
	return opj_decode(d->codec, d->stream, d->image) && opj_end_decompress(d->codec, d->stream);
}

static void lumen_close(lumen_dec *d) {
	if (d->image) opj_image_destroy(d->image);
	if (d->stream) opj_stream_destroy(d->stream);
	if (d->codec) opj_destroy_codec(d->codec);
}

static opj_image_comp_t *lumen_comp(opj_image_t *im, int i) { return &im->comps[i]; }
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Available reports whether this build decodes JPEG 2000.
const Available = true

// Version is the OpenJPEG library version.
func Version() string { return C.GoString(C.opj_version()) }

// Decode decodes a JPEG 2000 code stream (or JP2 file). The header is checked against
// lim before any sample is decoded.
func Decode(data []byte, lim Limits) (*Image, error) {
	if len(data) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrFormat, len(data))
	}
	// The stream keeps a pointer to data in C memory while OpenJPEG reads it: pin it.
	var pin runtime.Pinner
	pin.Pin(&data[0])
	defer pin.Unpin()
	d := (*C.lumen_dec)(C.calloc(1, C.size_t(unsafe.Sizeof(C.lumen_dec{}))))
	if d == nil {
		return nil, fmt.Errorf("openjpeg: out of memory")
	}
	defer C.free(unsafe.Pointer(d))
	defer C.lumen_close(d)
	fail := func(stage string) error {
		if msg := C.GoString(&d.msg[0]); msg != "" {
			return fmt.Errorf("%w: %s: %s", ErrFormat, stage, msg)
		}
		return fmt.Errorf("%w: %s", ErrFormat, stage)
	}
	if C.lumen_open(d, (*C.uchar)(unsafe.Pointer(&data[0])), C.size_t(len(data))) == 0 {
		return nil, fail("header")
	}
	im := d.image
	w, h, nc := int(im.x1-im.x0), int(im.y1-im.y0), int(im.numcomps)
	maxPixels := lim.MaxPixels
	if maxPixels == 0 {
		maxPixels = 1 << 28
	}
	switch {
	case w <= 0 || h <= 0 || nc <= 0:
		return nil, fmt.Errorf("%w: %dx%d with %d components", ErrFormat, w, h, nc)
	case lim.Width != 0 && w != lim.Width, lim.Height != 0 && h != lim.Height, lim.Components != 0 && nc != lim.Components:
		return nil, fmt.Errorf("%w: the code stream is %dx%dx%d, expected %dx%dx%d", ErrFormat, w, h, nc, lim.Width, lim.Height, lim.Components)
	case w*h > maxPixels:
		return nil, fmt.Errorf("%w: %dx%d is more than %d pixels", ErrFormat, w, h, maxPixels)
	}
	if C.lumen_decode(d) == 0 {
		return nil, fail("decoding")
	}
	out := &Image{Width: w, Height: h, Components: nc, Data: make([]int32, w*h*nc)}
	for c := 0; c < nc; c++ {
		comp := C.lumen_comp(im, C.int(c))
		cw, ch, dx, dy := int(comp.w), int(comp.h), int(comp.dx), int(comp.dy)
		if comp.data == nil || cw <= 0 || ch <= 0 || dx <= 0 || dy <= 0 || cw*dx < w || ch*dy < h {
			return nil, fmt.Errorf("%w: component %d is %dx%d (subsampled %dx%d) in a %dx%d image", ErrFormat, c, cw, ch, dx, dy, w, h)
		}
		out.Precision = max(out.Precision, int(comp.prec))
		if c == 0 {
			out.Signed = comp.sgnd != 0
		}
		samples := unsafe.Slice((*int32)(unsafe.Pointer(comp.data)), cw*ch)
		for y := 0; y < h; y++ {
			row := samples[(y/dy)*cw:]
			o := out.Data[y*w*nc+c:]
			if dx == 1 {
				for x := 0; x < w; x++ {
					o[x*nc] = row[x]
				}
				continue
			}
			for x := 0; x < w; x++ { // a subsampled component, replicated
				o[x*nc] = row[x/dx]
			}
		}
	}
	return out, nil
}
