// Package render turns stored pixel data into 8-bit pictures, following the grayscale
// and colour pipelines of DICOM PS3.3 C.7.6.3 (Image Pixel Module), C.11.1 (Modality
// LUT), C.11.2 (VOI LUT, including LINEAR, LINEAR_EXACT and SIGMOID) and PS3.4 N.2: stored
// values are unpacked (BitsStored, sign, samples and planar configuration), mapped by the
// modality LUT and the VOI window, inverted for MONOCHROME1; colour data (RGB, YBR_FULL,
// YBR_FULL_422, PALETTE COLOR) is converted to RGB. Frames are decoded by package
// dcm/codec; waveforms (PS3.3 C.10.9) are drawn as ECG sheets.
package render
