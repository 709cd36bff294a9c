package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/lumenpacs/lumen/testdata/gen"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus:", err)
		os.Exit(1)
	}
}

// benchPatient is the patient of the -ct benchmark series.
var benchPatient = gen.Patient{ID: "LUMEN-BENCH", Issuer: "LUMEN-TEST", Name: "Benchmark^Series", BirthDate: "19900101", Sex: "O"}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gencorpus", flag.ContinueOnError)
	out := fs.String("out", "", "output directory (required)")
	seed := fs.Uint64("seed", 1, "seed for UIDs and pixel noise")
	corpus := fs.Bool("corpus", true, "write the standard corpus")
	ct := fs.Int("ct", 0, "also write an N-instance CT series under OUT/bench-ct")
	rows := fs.Int("rows", 512, "rows of the -ct slices")
	cols := fs.Int("cols", 512, "columns of the -ct slices")
	largeFrames := fs.Int("large-frames", 0, "also stream an N-frame XA multi-frame to OUT/large.dcm")
	largeRows := fs.Int("large-rows", 512, "rows of the -large-frames frames")
	largeCols := fs.Int("large-cols", 512, "columns of the -large-frames frames")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}

	if *corpus {
		objs, err := gen.Corpus(*seed)
		if err != nil {
			return err
		}
		if err := gen.WriteCorpus(*out, objs); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "corpus: %d instances in %s\n", len(objs), *out)
	}

	if *ct > 0 {
		opt := gen.Options{
			Seed:              *seed,
			Patient:           benchPatient,
			StudyID:           "9001",
			AccessionNumber:   "BENCH0001",
			StudyDescription:  "Benchmark CT",
			SeriesDescription: fmt.Sprintf("Benchmark CT %dx%d", *rows, *cols),
			Dir:               "bench-ct",
		}
		var total int64
		err := gen.CTSeriesFunc(opt, *ct, *rows, *cols, func(o gen.Object) error {
			total += int64(len(o.Data))
			return gen.WriteCorpus(*out, []gen.Object{o})
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ct: %d instances, %d bytes in %s\n", *ct, total, filepath.Join(*out, "bench-ct"))
	}

	if *largeFrames > 0 {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		path := filepath.Join(*out, "large.dcm")
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		opt := gen.Options{Seed: *seed, Patient: benchPatient, StudyID: "9002", AccessionNumber: "BENCH0002", StudyDescription: "Benchmark XA"}
		n, err := gen.LargeMultiframe(f, opt, *largeFrames, *largeRows, *largeCols)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "large: %d frames, %d bytes in %s\n", *largeFrames, n, path)
	}
	return nil
}
