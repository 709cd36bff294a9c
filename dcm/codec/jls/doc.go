// Package jls decodes JPEG-LS (ITU-T T.87 / ISO 14495-1): lossless and near-lossless,
// single component, or several components non-interleaved (ILV=0), line interleaved
// (ILV=1) or sample interleaved (ILV=2, T.87 B.3), the codec of DICOM transfer syntaxes
// 1.2.840.10008.1.2.4.80 and 1.2.840.10008.1.2.4.81. It implements the context modelling,
// prediction, Golomb coding and run mode of T.87 Annex A.
package jls
