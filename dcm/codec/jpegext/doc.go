// Package jpegext decodes sequential DCT JPEG (ITU-T T.81 / ISO 10918-1 processes 1, 2
// and 4: baseline and extended, Huffman coded) at 8 and 12 bits per sample, the codec of
// DICOM transfer syntaxes 1.2.840.10008.1.2.4.50 and 1.2.840.10008.1.2.4.51. Go's
// image/jpeg decodes 8 bits only; 12-bit JPEG is common in older CT, MR and CR archives.
//
// It reads SOF0 and SOF1 frames of 1 to 4 components with any integral sampling
// factors, interleaved and non-interleaved scans, restart intervals (DRI/RSTn) and
// 8- and 16-bit quantization tables, and it decodes every block with an exact separable
// inverse DCT (T.81 A.3.3, in float64), the level shift of 2^(P−1) and clamping to
// 0..2^P−1. Subsampled components are upsampled to full size as IJG's libjpeg does (the
// triangle filter for 2:1 horizontal and 2:1×2:1, replication otherwise), so the
// output matches DCMTK's dcmdjpeg to within what two correct IDCTs differ by.
//
// Not implemented, refused with ErrUnsupported: progressive (SOF2, SOF6, processes
// 10–13), hierarchical, arithmetic coding and lossless (SOF3; see package ljpeg).
package jpegext
