package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import PATH...",
		Short: "Import DICOM PS3.10 files and directories (recursively)",
		Long: `Import DICOM PS3.10 files and directories, recursively, with parallel workers.
Files already in the archive are reported as already present without being written
again, so re-running an import is safe and fast: the same data set counts as present
whatever its encoding or File Meta Information. A file whose SOP Instance UID is stored
with other content is kept in quarantine under the default duplicate policy (listed by
the quarantine admin API, GET /api/v1/quarantine) and reported as quarantined. The exit
status is 1 when any file failed, 0 otherwise.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, b, err := setup(cmd)
			if err != nil {
				return err
			}
			defer b.Close()
			progress, _ := cmd.Flags().GetString("progress")
			im := &importer{p: b.pipeline, workers: c.Import.Workers, progress: cmd.ErrOrStderr()}
			switch progress {
			case "auto":
				if f, ok := cmd.ErrOrStderr().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					im.bar = true
				}
			case "bar":
				im.bar = true
			case "lines":
			case "none":
				im.progress = nil
			default:
				return fmt.Errorf("--progress %q: want auto, bar, lines or none", progress)
			}
			sum := im.run(cmd.Context(), args)
			sum.Print(cmd.OutOrStdout())
			if sum.Failed > 0 || sum.NotAttempted > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().Int("workers", 0, "parallel workers (key import.workers, default 4)")
	cmd.Flags().String("progress", "auto", "progress display: auto (bar on a terminal, lines otherwise), bar, lines, none")
	return cmd
}

// importer runs an import and shows its progress on progress: a bar, or a line every two
// seconds.
type importer struct {
	p        *ingest.Pipeline
	workers  int
	progress io.Writer // nil: silent
	bar      bool
	// onDone, if set, is called after each file with the number of files done (tests).
	onDone func(done int64)
}

// run imports the files under paths.
func (im *importer) run(ctx context.Context, paths []string) *ingest.ImportSummary {
	start := time.Now()
	var bar *progressbar.ProgressBar
	var doneFiles, doneBytes atomic.Int64
	stopLines := make(chan struct{})
	var linesDone sync.WaitGroup
	progress := func(p ingest.ImportProgress) {
		if p.DoneFiles == 0 { // the files are listed
			switch {
			case im.progress == nil:
			case im.bar:
				bar = newImportBar(im.progress, p)
			default:
				linesDone.Add(1)
				go func() {
					defer linesDone.Done()
					progressLines(im.progress, start, p, &doneFiles, &doneBytes, stopLines)
				}()
			}
			return
		}
		doneFiles.Store(int64(p.DoneFiles))
		doneBytes.Store(p.DoneBytes)
		if im.onDone != nil {
			im.onDone(int64(p.DoneFiles))
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("files %d/%d", p.DoneFiles, p.Files))
			bar.Set64(p.DoneBytes)
		}
	}
	s := (&ingest.Importer{Pipeline: im.p, Workers: im.workers, Progress: progress}).Run(ctx, paths)
	close(stopLines)
	linesDone.Wait()
	if bar != nil {
		bar.Finish()
	}
	return s
}

// newImportBar is the progress bar of an import of p.Files files, p.Bytes bytes.
func newImportBar(w io.Writer, p ingest.ImportProgress) *progressbar.ProgressBar {
	return progressbar.NewOptions64(p.Bytes,
		progressbar.OptionSetWriter(w),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetDescription(fmt.Sprintf("files 0/%d", p.Files)),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
}

// progressLines writes a progress line every two seconds until stop is closed.
func progressLines(w io.Writer, start time.Time, p ingest.ImportProgress, doneFiles, doneBytes *atomic.Int64, stop <-chan struct{}) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			el := time.Since(start).Seconds()
			nb := doneBytes.Load()
			rate := float64(nb) / el
			eta := "?"
			if rate > 0 {
				eta = (time.Duration(float64(p.Bytes-nb)/rate) * time.Second).Round(time.Second).String()
			}
			fmt.Fprintf(w, "import: %d/%d files, %.1f/%.1f MB, %.1f files/s, %.1f MB/s, ETA %s\n",
				doneFiles.Load(), p.Files, float64(nb)/1e6, float64(p.Bytes)/1e6, float64(doneFiles.Load())/el, rate/1e6, eta)
		}
	}
}
