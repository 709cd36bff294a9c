//go:build !(cgo && libjpeg)

package jpegenc

import (
	"image"
	"image/jpeg"
	"io"
)

// LibJPEG reports whether this build encodes with libjpeg-turbo.
const LibJPEG = false

// Version names the encoder of this build.
func Version() string { return "Go image/jpeg" }

// Encode writes img to w as a baseline JPEG of the given quality (1–100; values
// outside are clamped).
func Encode(w io.Writer, img image.Image, quality int) error {
	return jpeg.Encode(w, img, &jpeg.Options{Quality: quality})
}
