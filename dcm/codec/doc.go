// Package codec decodes the pixel data of a DICOM object into stored values, one frame at
// a time, by transfer syntax (PS3.5 Annex A): native data (PS3.5 8.1.1, 8.2; including
// bit-packed one-bit and YBR_FULL_422 frames), RLE Lossless (PS3.5 Annex G), JPEG baseline
// and extended 8-bit (image/jpeg) and 12-bit (package jpegext), JPEG lossless process 14
// (package ljpeg), JPEG-LS (package jls) and JPEG 2000 (package openjpeg, when the build
// links OpenJPEG). The decoders form one explicit table; Supported says which transfer
// syntaxes it holds. Pixels reads the Image Pixel Module (PS3.3 C.7.6.3) that says how a
// frame's samples are stored, and NativeBytes writes a decoded frame back as native pixel
// data (for transcoding to Explicit VR Little Endian).
//
// Package codec is on the ground floor with dcm: it imports nothing of Lumen but dcm and
// its own sub-packages. Turning stored values into pictures (LUTs, windows, colour) is
// package render's work.
package codec
