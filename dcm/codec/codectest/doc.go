// Package codectest checks pixel decoders against DCMTK: the generated corpus is
// compressed with a DCMTK encoder and every decoded sample compared with the original
// or with what a DCMTK decoder makes of it. It also encodes test frames with PVRG's
// JPEG codec (12-bit frames with restart intervals, one-component scans and sampling
// factors DCMTK does not write) and wraps frames into PS3.10 objects for DCMTK. It is
// used by the tests of the ljpeg, jls and jpegext decoders and of package render.
package codectest
