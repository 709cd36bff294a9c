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
// Text is decoded to UTF-8 (and encoded back, for C-FIND answers) in every character
// set of PS3.5 §6.1 (CharacterSet): the single-byte sets, UTF-8, GB18030 and GBK, and
// ISO 2022 code extensions (§6.1.2.5: escape sequences designating JIS X 0201/0208/0212,
// KS X 1001, GB 2312 and the single-byte sets to G0 and G1 within a value, the sets of
// value 1 active again at each delimiter), sequence items inheriting the Specific
// Character Set of the data set that holds them. golang.org/x/text provides the tables.
//
// The reader is single-pass and streaming: values larger than Options.BulkThreshold are
// skipped and only their byte offset and length are kept, so a 1 GB multi-frame object
// is parsed in a few kilobytes of memory. Those offsets (pixel data frames, encapsulated
// fragments, other bulk data) let WADO-RS serve frames and bulk data with ranged reads
// instead of re-parsing files. Every length read from the stream is checked before any
// allocation, and the total memory kept per object is bounded (Options.MaxRetained).
//
// github.com/suyashkumar/dicom provides the data dictionary (VRs of implicit-VR elements,
// keywords); its own parser is not used here because it neither reports byte offsets
// nor bounds allocations by the bytes actually present.
package dcm
