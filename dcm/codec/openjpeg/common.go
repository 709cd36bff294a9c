package openjpeg

import "errors"

// Image is a decoded code stream: Components samples per pixel, interleaved, each as
// the integer the code stream carries (signed when Signed) with Precision bits.
type Image struct {
	Width, Height, Components, Precision int
	Signed                               bool
	Data                                 []int32
}

// Limits bounds what Decode accepts, checked on the code stream's header before any
// sample is decoded.
type Limits struct {
	Width, Height, Components int // the geometry the caller expects; 0 accepts any
	MaxPixels                 int // Width×Height above which the stream is refused; 0 means 1<<28
}

// ErrUnavailable reports a build without the OpenJPEG binding.
var ErrUnavailable = errors.New("openjpeg: JPEG 2000 decoder not compiled in (build with cgo and -tags openjpeg)")

// ErrFormat reports a code stream OpenJPEG cannot decode, or one that does not match
// the expected geometry.
var ErrFormat = errors.New("openjpeg: invalid or unsupported JPEG 2000 code stream")
