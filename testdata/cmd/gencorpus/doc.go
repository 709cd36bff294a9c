// Command gencorpus writes Lumen's synthetic DICOM test data to a directory.
//
// By default it writes the standard corpus (gen.Corpus) under -out. With
// -ct N it also writes an N-instance CT series of -rows × -cols 16-bit
// slices under -out/bench-ct/ for import benchmarks (2000 instances of
// 512 × 512 are about 1 GB, generated one at a time), and with
// -large-frames N it streams an N-frame 8-bit XA multi-frame of
// -large-rows × -large-cols to -out/large.dcm (4096 frames of 512 × 512
// are 1 GiB). All output is deterministic for a given -seed.
//
// Usage:
//
//	go run ./testdata/cmd/gencorpus -out /tmp/corpus
//	go run ./testdata/cmd/gencorpus -out /tmp/bench -corpus=false -ct 2000 -rows 512 -cols 512
//	go run ./testdata/cmd/gencorpus -out /tmp/big -corpus=false -large-frames 4096
package main
