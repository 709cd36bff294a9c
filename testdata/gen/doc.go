// Package gen generates small, synthetic, deterministic DICOM test objects for
// Lumen's tests and benchmarks. It is test tooling: nothing in the server
// imports it, and nothing it produces is real patient data.
//
// Every generator returns complete DICOM PS3.10 files (128-byte preamble,
// "DICM", a File Meta Information group with FileMetaInformationGroupLength,
// FileMetaInformationVersion, MediaStorageSOPClassUID, MediaStorageSOPInstanceUID,
// TransferSyntaxUID and ImplementationClassUID) encoded in Explicit VR Little
// Endian, written with github.com/suyashkumar/dicom. Each data set carries the
// Patient, General Study, General Series, General Equipment and SOP Common
// attributes that an archive indexes, plus the modality-specific modules:
//
//   - CTSeries: CT Image Storage, 16-bit signed pixels with a circular body
//     phantom, Hounsfield rescale (-1024/1), window 40/400, increasing
//     ImagePositionPatient and SliceLocation.
//   - MRSeries: MR Image Storage, 16-bit signed (12 bits stored) head phantom,
//     rescale and window.
//   - XACine: X-Ray Angiographic Image Storage, 8-bit MONOCHROME2 multi-frame
//     cine (15 frames/s) with a blob that moves from frame to frame.
//   - USCine: Ultrasound Multi-frame Image Storage, 8-bit RGB cine
//     (30 frames/s) with a sector, speckle and a colour-flow region.
//   - ECG12Lead: 12-lead ECG Waveform Storage, 12 channels × 5000 samples at
//     500 Hz with a synthetic PQRST beat at 72 beats per minute.
//   - BasicTextSR: Basic Text SR with a findings and an impression TEXT item.
//   - LargeMultiframe: streams an arbitrarily large native XA multi-frame
//     (up to the 4 GiB PixelData limit) to an io.Writer with a constant,
//     small memory footprint.
//   - Corpus: a fixed, small corpus of two patients, four studies and seven
//     series built from the generators above; WriteCorpus puts it on disk.
//
// Determinism: the output is a pure function of the arguments. No clock and
// no random UIDs are used; UIDs are derived from UIDRoot and hashes of the
// options, and pixel or sample noise comes from math/rand/v2 PCG generators
// seeded with Options.Seed. Calling a generator twice with the same
// arguments yields byte-identical files.
//
// Non-ASCII values are encoded as UTF-8, and any data set that contains one
// gets SpecificCharacterSet "ISO_IR 192"; data sets that are pure ASCII carry
// no SpecificCharacterSet (the default repertoire).
//
// ModuleSamplesDir locates the real sample files that ship inside the
// github.com/suyashkumar/dicom module (see testdata/SOURCES.md for their
// provenance and licences); they are read from the module cache and never
// copied into this repository.
package gen
