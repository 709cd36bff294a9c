// Package transcode produces other representations of stored objects (PS3.5 §10, Annex
// A) for the network paths that send them (C-GET, C-MOVE, `lumen send`, forwarding,
// WADO-RS and WADO-URI): an object goes out as stored, or converted to Explicit VR
// Little Endian (A.2), Implicit VR Little Endian (A.1) or Deflated Explicit VR Little
// Endian (A.5) from every uncompressed syntax Lumen stores (deflated objects are
// inflated, big endian ones byte-swapped by VR, PS3.5 7.3) and from every compressed
// syntax a decoder is registered for in dcm/codec (pixel data decoded frame by
// frame to native pixel data, PS3.5 8.1.1, with PhotometricInterpretation and
// PlanarConfiguration made to match).
//
// Conversions stream: the header is parsed with bulk values skipped, the values are
// then copied by ranged reads (forward through an inflater for deflated objects) and
// compressed frames are decoded one at a time, so an object is never held whole in
// memory. Prepare does everything that can fail for reasons of content before the first
// byte is written (the syntaxes, the header, the first frame), so that a conversion
// that cannot be done is answered with its reason instead of a broken transfer; Check
// does the same reading only the header and the first frame.
package transcode
