// Package jpegmarker reads the marker segments that JPEG (ITU-T T.81 B.1, B.2.2) and
// JPEG-LS (ITU-T T.87 C.1, C.2.2) share: markers, length-prefixed segments and the frame
// header with its components' sampling factors.
package jpegmarker
