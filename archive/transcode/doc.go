// Package transcode produces other representations of stored objects (PS3.5 §10, Annex
// A): the pixel data of an encapsulated object decoded frame by frame into native pixel
// data (Explicit VR Little Endian, PS3.5 §8.1.1), with PhotometricInterpretation and
// PlanarConfiguration made to match, and a PS3.10 stream cut down to its data set for
// DIMSE. Frames are read by range from the store, one at a time, so an object is never
// held whole in memory.
package transcode
