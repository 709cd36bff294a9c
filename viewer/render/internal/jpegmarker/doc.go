// Package jpegmarker reads the marker segments that JPEG (ITU-T T.81 B.1) and JPEG-LS
// (ITU-T T.87 C.1) share: markers, length-prefixed segments and the frame header.
package jpegmarker
