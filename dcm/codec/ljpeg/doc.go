// Package ljpeg decodes lossless JPEG (ITU-T T.81 process 14, Huffman coded, predictors
// 1–7, point transform), the codec of DICOM transfer syntaxes 1.2.840.10008.1.2.4.57 and
// 1.2.840.10008.1.2.4.70 (selection value 1), common in XA. Go's image/jpeg does not
// implement it.
package ljpeg
