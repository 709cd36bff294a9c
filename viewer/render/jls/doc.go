// Package jls decodes JPEG-LS (ITU-T T.87 / ISO 14495-1): lossless and near-lossless,
// single component or line interleaved, the codec of DICOM transfer syntaxes
// 1.2.840.10008.1.2.4.80 and 1.2.840.10008.1.2.4.81. It implements the context modelling,
// prediction, Golomb coding and run mode of T.87 Annex A.
package jls
