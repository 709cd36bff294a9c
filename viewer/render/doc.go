// Package render turns stored pixel data into 8-bit pictures, following the grayscale
// and colour pipelines of DICOM PS3.3 C.7.6.3 (Image Pixel Module), C.11.1 (Modality
// LUT), C.11.2 (VOI LUT, including LINEAR, LINEAR_EXACT and SIGMOID) and PS3.4 N.2: stored
// values are unpacked (BitsStored, sign, samples and planar configuration), mapped by the
// modality LUT and the VOI window, inverted for MONOCHROME1; colour data (RGB, YBR_FULL,
// YBR_FULL_422, PALETTE COLOR) is converted to RGB. Frames come from a codec registry by
// transfer syntax: native, RLE (PS3.5 Annex G), JPEG baseline and extended 8-bit
// (image/jpeg) and 12-bit (package jpegext), JPEG lossless (package ljpeg), JPEG-LS
// (package jls) and JPEG 2000 (package openjpeg, when built with it).
package render
