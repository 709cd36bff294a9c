// Package openjpeg decodes JPEG 2000 (ISO/IEC 15444-1) code streams, the codec of DICOM
// transfer syntaxes 1.2.840.10008.1.2.4.90 (JPEG 2000 Image Compression, Lossless Only)
// and 1.2.840.10008.1.2.4.91 (JPEG 2000 Image Compression), with Debian's OpenJPEG
// (libopenjp2) through cgo.
//
// The binding is compiled only with the build tag openjpeg and cgo (`go build -tags
// openjpeg`, as `make build` does when libopenjp2's headers are installed). Without them
// Available is false and Decode fails with ErrUnavailable, so a pure-Go build of Lumen
// still works and answers JPEG 2000 objects with a placeholder.
//
// Per PS3.5 A.4.4 the fragments of a frame hold a raw code stream (from SOC, FF4F); a
// JP2 file format wrapper, which some writers add, is accepted too. Inverse multiple
// component transforms (RCT, ICT) are applied by the decoder, so a colour frame comes
// out as RGB.
package openjpeg
