// Package dcm reads DICOM data streams without holding bulk data in memory.
//
// It implements the data set encoding of DICOM PS3.5 (§7: data elements, value
// representations, explicit and implicit VR, little and big endian, sequences of items
// with defined and undefined lengths, §8.2 and Annex A.4: encapsulated pixel data with its
// Basic Offset Table and fragments, Annex A.5: deflate) and the file format of PS3.10
// (§7.1: preamble, "DICM" prefix and File Meta Information group 0002). It also produces
// the DICOM JSON Model of PS3.18 Annex F, bounded (JSONOptions: long values become
// BulkDataURIs, private elements past a count and elements past a total size are left
// out and reported), so that a small object cannot make a huge metadata object.
//
// The reader is single-pass and streaming: values larger than Options.BulkThreshold are
// skipped and only their byte offset and length are kept, so a 1 GB multi-frame object
// is parsed in a few kilobytes of memory. Those offsets (pixel data frames, encapsulated
// fragments, other bulk data) let WADO-RS serve frames and bulk data with ranged reads
// instead of re-parsing files. Every length read from the stream is checked before any
// allocation, and the total memory kept per object is bounded (Options.MaxRetained).
//
// github.com/suyashkumar/dicom provides the data dictionary (VRs of implicit-VR elements,
// keywords) and character set decoders; its own parser is not used here because it
// neither reports byte offsets nor bounds allocations by the bytes actually present.
package dcm
