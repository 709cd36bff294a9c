//go:build cgo && libjpeg

package jpegenc

/*
#cgo pkg-config: libjpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

#define LUMEN_STR2(x) #x
#define LUMEN_STR(x) LUMEN_STR2(x)
static const char *lumen_version(void) { return LUMEN_STR(LIBJPEG_TURBO_VERSION); }

// One compression: libjpeg's state, the error handler's jump back, and the output,
// grown with realloc. It lives in C memory: after longjmp only the pointer to it is used.
typedef struct {
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr jerr;
	jmp_buf jump;
	struct jpeg_destination_mgr dest;
	unsigned char *buf;
	size_t cap;
	size_t len;
	char msg[JMSG_LENGTH_MAX];
} lumen_job;

static void lumen_error_exit(j_common_ptr c) {
	lumen_job *j = (lumen_job *)c->client_data;
	(*c->err->format_message)(c, j->msg);
	longjmp(j->jump, 1);
}

static void lumen_output_message(j_common_ptr c) {}

static void lumen_dest_init(j_compress_ptr c) {
	lumen_job *j = (lumen_job *)c->client_data;
	j->dest.next_output_byte = j->buf;
	j->dest.free_in_buffer = j->cap;
}

static boolean lumen_dest_empty(j_compress_ptr c) {
	lumen_job *j = (lumen_job *)c->client_data;
	size_t ncap = j->cap * 2;
	unsigned char *nb = realloc(j->buf, ncap);
	if (nb == NULL) ERREXIT1(c, JERR_OUT_OF_MEMORY, 100);
	j->dest.next_output_byte = nb + j->cap;
	j->dest.free_in_buffer = ncap - j->cap;
	j->buf = nb;
	j->cap = ncap;
	return TRUE;
}

static void lumen_dest_term(j_compress_ptr c) {
	lumen_job *j = (lumen_job *)c->client_data;
	j->len = j->cap - j->dest.free_in_buffer;
}

// lumen_encode compresses h rows of w pixels of comps bytes (colour space cs) that start
// stride bytes apart at pix. 0: j->buf holds j->len bytes; -1: j->msg says why not.
static int lumen_encode(lumen_job *j, const unsigned char *pix, int w, int h, int stride, int comps, int cs, int quality) {
	j->cap = (size_t)w * h * comps / 4 + 4096;
	j->buf = malloc(j->cap);
	if (j->buf == NULL) {
		strcpy(j->msg, "out of memory");
		return -1;
	}
	j->ci.err = jpeg_std_error(&j->jerr);
	j->jerr.error_exit = lumen_error_exit;
	j->jerr.output_message = lumen_output_message;
	if (setjmp(j->jump)) {
		jpeg_destroy_compress(&j->ci);
		return -1;
	}
	jpeg_create_compress(&j->ci);
	j->ci.client_data = j;
	j->dest.init_destination = lumen_dest_init;
	j->dest.empty_output_buffer = lumen_dest_empty;
	j->dest.term_destination = lumen_dest_term;
	j->ci.dest = &j->dest;
	j->ci.image_width = w;
	j->ci.image_height = h;
	j->ci.input_components = comps;
	j->ci.in_color_space = (J_COLOR_SPACE)cs;
	jpeg_set_defaults(&j->ci);
	jpeg_set_quality(&j->ci, quality, TRUE);
	jpeg_start_compress(&j->ci, TRUE);
	while (j->ci.next_scanline < j->ci.image_height) {
		JSAMPROW rows[16];
		int k;
		for (k = 0; k < 16 && j->ci.next_scanline + k < j->ci.image_height; k++)
			rows[k] = (JSAMPROW)(pix + (size_t)(j->ci.next_scanline + k) * stride);
		jpeg_write_scanlines(&j->ci, rows, k);
	}
	jpeg_finish_compress(&j->ci);
	jpeg_destroy_compress(&j->ci);
	return 0;
}

static void lumen_free(lumen_job *j) {
	free(j->buf);
	free(j);
}
*/
import "C"

import (
	"errors"
	"image"
	"image/draw"
	"image/jpeg"
	"io"
	"unsafe"
)

// LibJPEG reports whether this build encodes with libjpeg-turbo.
const LibJPEG = true

// Version names the encoder of this build.
func Version() string { return "libjpeg-turbo " + C.GoString(C.lumen_version()) }

// Encode writes img to w as a baseline JPEG of the given quality (1–100; values
// outside are clamped), as image/jpeg would: *image.Gray as one component, anything
// else as YCbCr 4:2:0 from its colours with alpha premultiplied.
func Encode(w io.Writer, img image.Image, quality int) error {
	b := img.Bounds()
	if b.Empty() || b.Dx() >= 1<<16 || b.Dy() >= 1<<16 {
		// libjpeg-turbo refuses an empty picture; image/jpeg writes it, and says
		// when a picture is too large.
		return jpeg.Encode(w, img, &jpeg.Options{Quality: quality})
	}
	quality = max(1, min(100, quality))
	var pix []byte
	var stride, comps int
	var cs C.int
	switch m := img.(type) {
	case *image.Gray:
		pix, stride, comps, cs = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 1, C.JCS_GRAYSCALE
	case *image.RGBA:
		pix, stride, comps, cs = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4, C.JCS_EXT_RGBA
	case *image.NRGBA:
		if m.Opaque() { // else premultiplied below, as image/jpeg reads colours
			pix, stride, comps, cs = m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], m.Stride, 4, C.JCS_EXT_RGBA
		}
	}
	if pix == nil {
		rgba := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
		pix, stride, comps, cs = rgba.Pix, rgba.Stride, 4, C.JCS_EXT_RGBA
	}
	j := (*C.lumen_job)(C.calloc(1, C.sizeof_lumen_job))
	if j == nil {
		return errors.New("jpeg: out of memory")
	}
	defer C.lumen_free(j)
	if C.lumen_encode(j, (*C.uchar)(unsafe.Pointer(&pix[0])), C.int(b.Dx()), C.int(b.Dy()), C.int(stride), C.int(comps), cs, C.int(quality)) != 0 {
		return errors.New("jpeg: libjpeg-turbo: " + C.GoString(&j.msg[0]))
	}
	_, err := w.Write(unsafe.Slice((*byte)(unsafe.Pointer(j.buf)), int(j.len)))
	return err
}
