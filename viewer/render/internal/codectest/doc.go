// Package codectest checks pixel decoders against DCMTK's encoders: the generated corpus
// is compressed with a DCMTK tool and every decoded sample compared with the original.
// It is used by the tests of the ljpeg and jls decoders.
package codectest
