// Package jpegenc encodes rendered pictures as baseline JPEG (ISO/IEC 10918-1): with
// Debian's libjpeg-turbo through cgo when the build has the tag libjpeg, else with Go's
// image/jpeg.
//
// Both encoders write the same kind of stream: sequential DCT, 8-bit, the quantization
// tables of ISO/IEC 10918-1 Annex K scaled by the quality (1–100) as the IJG library
// does, the standard Huffman tables, one component for *image.Gray and three (YCbCr,
// chroma sampled 2×2, 4:2:0) for everything else. libjpeg-turbo adds a JFIF APP0 marker.
//
// The binding is compiled only with the build tag libjpeg and cgo (`go build -tags
// libjpeg`, as `make build` does when libjpeg-turbo's headers are installed: Debian
// package libjpeg62-turbo-dev). Without them LibJPEG is false and Encode uses
// image/jpeg, so a pure-Go build of Lumen renders the same pictures, only slower.
package jpegenc
