//go:build !(cgo && openjpeg)

package openjpeg

// Available reports whether this build decodes JPEG 2000.
const Available = false

// Version is the OpenJPEG library version, empty without the binding.
func Version() string { return "" }

// Decode fails with ErrUnavailable: this build has no JPEG 2000 decoder.
func Decode(data []byte, lim Limits) (*Image, error) { return nil, ErrUnavailable }
