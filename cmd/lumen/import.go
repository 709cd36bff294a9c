package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lumenpacs/lumen/index"
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
			im := &importer{p: b.pipeline, idx: b.index, workers: c.Import.Workers, progress: cmd.ErrOrStderr()}
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
			sum.print(cmd.OutOrStdout())
			if sum.failed > 0 || sum.notAttempted > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().Int("workers", 0, "parallel workers (key import.workers, default 4)")
	cmd.Flags().String("progress", "auto", "progress display: auto (bar on a terminal, lines otherwise), bar, lines, none")
	return cmd
}

type importFile struct {
	path string
	size int64
	err  error // error met while walking
}

type fileFailure struct {
	path, reason string
}

type importSummary struct {
	files, imported, present, replaced, kept, quarantined, failed, notAttempted, skipped int
	bytes                                                                                int64
	elapsed                                                                              time.Duration
	failures                                                                             []fileFailure
	stopped                                                                              string
}

func (s *importSummary) print(w io.Writer) {
	secs := s.elapsed.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	fmt.Fprintf(w, "import: %d files, %.1f MB in %s (%.1f files/s, %.1f MB/s)\n",
		s.files, float64(s.bytes)/1e6, s.elapsed.Round(time.Millisecond), float64(s.files-s.notAttempted)/secs, float64(s.bytes)/1e6/secs)
	fmt.Fprintf(w, "  imported:        %d\n", s.imported)
	fmt.Fprintf(w, "  already present: %d\n", s.present)
	if s.replaced > 0 {
		fmt.Fprintf(w, "  replaced:        %d\n", s.replaced)
	}
	if s.kept > 0 {
		fmt.Fprintf(w, "  kept existing:   %d (different content, duplicate policy keep-first)\n", s.kept)
	}
	if s.quarantined > 0 {
		fmt.Fprintf(w, "  quarantined:     %d (SOP Instance UID stored with other content: kept aside, the stored copy stays served; see GET /api/v1/quarantine)\n", s.quarantined)
	}
	if s.skipped > 0 {
		fmt.Fprintf(w, "  skipped:         %d (DICOMDIR media directories)\n", s.skipped)
	}
	fmt.Fprintf(w, "  failed:          %d\n", s.failed)
	if s.notAttempted > 0 {
		fmt.Fprintf(w, "  not imported:    %d (%s; run the import again)\n", s.notAttempted, s.stopped)
	}
	if len(s.failures) > 0 {
		sort.Slice(s.failures, func(i, j int) bool { return s.failures[i].path < s.failures[j].path })
		fmt.Fprintln(w, "failed files:")
		for _, f := range s.failures {
			fmt.Fprintf(w, "  %s: %s\n", f.path, f.reason)
		}
	}
}

type importer struct {
	p        *ingest.Pipeline
	idx      index.Index
	workers  int
	progress io.Writer // nil: silent
	bar      bool
	// onDone, if set, is called after each file with the number of files done (tests).
	onDone func(done int64)
}

// collect lists the regular files under paths.
func collect(paths []string) []importFile {
	var out []importFile
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil {
			out = append(out, importFile{path: root, err: err})
			continue
		}
		if !st.IsDir() {
			out = append(out, importFile{path: root, size: st.Size()})
			continue
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				out = append(out, importFile{path: p, err: err})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				// Follow links to files; links to directories are not followed (no loops).
				st, err := os.Stat(p)
				switch {
				case err != nil:
					out = append(out, importFile{path: p, err: err})
				case st.Mode().IsRegular():
					out = append(out, importFile{path: p, size: st.Size()})
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				out = append(out, importFile{path: p, err: err})
				return nil
			}
			out = append(out, importFile{path: p, size: info.Size()})
			return nil
		})
	}
	return out
}

// maxUnavailable consecutive storage failures stop the import.
const maxUnavailable = 10

func (im *importer) run(ctx context.Context, paths []string) *importSummary {
	start := time.Now()
	files := collect(paths)
	var total int64
	for _, f := range files {
		total += f.size
	}
	sum := &importSummary{files: len(files)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var doneFiles, doneBytes atomic.Int64
	var bar *progressbar.ProgressBar
	stopLines := make(chan struct{})
	var linesDone sync.WaitGroup
	if im.progress != nil && im.bar {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(im.progress),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetDescription(fmt.Sprintf("files 0/%d", len(files))),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(im.progress) }),
		)
	} else if im.progress != nil {
		linesDone.Add(1)
		go func() {
			defer linesDone.Done()
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopLines:
					return
				case <-t.C:
					el := time.Since(start).Seconds()
					nb := doneBytes.Load()
					rate := float64(nb) / el
					eta := "?"
					if rate > 0 {
						eta = (time.Duration(float64(total-nb)/rate) * time.Second).Round(time.Second).String()
					}
					fmt.Fprintf(im.progress, "import: %d/%d files, %.1f/%.1f MB, %.1f files/s, %.1f MB/s, ETA %s\n",
						doneFiles.Load(), len(files), float64(nb)/1e6, float64(total)/1e6, float64(doneFiles.Load())/el, rate/1e6, eta)
				}
			}
		}()
	}

	jobs := make(chan importFile)
	var mu sync.Mutex
	var consecutiveUnavailable int
	record := func(f importFile, outcome string, reason string, unavailable bool) {
		mu.Lock()
		defer mu.Unlock()
		switch outcome {
		case "imported":
			sum.imported++
			sum.bytes += f.size
		case "present":
			sum.present++
			sum.bytes += f.size
		case "replaced":
			sum.replaced++
			sum.bytes += f.size
		case "kept":
			sum.kept++
		case "quarantined":
			sum.quarantined++
			sum.bytes += f.size
		case "skipped":
			sum.skipped++
		case "interrupted":
			sum.notAttempted++
		case "failed":
			sum.failed++
			sum.failures = append(sum.failures, fileFailure{f.path, reason})
		}
		if unavailable {
			consecutiveUnavailable++
			if consecutiveUnavailable >= maxUnavailable && sum.stopped == "" {
				sum.stopped = "import stopped after repeated storage failures"
				cancel()
			}
		} else if outcome != "failed" {
			consecutiveUnavailable = 0
		}
		n := doneFiles.Add(1)
		doneBytes.Add(f.size)
		if im.onDone != nil {
			im.onDone(n)
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("files %d/%d", doneFiles.Load(), len(files)))
			bar.Add64(f.size)
		}
	}
	var wg sync.WaitGroup
	for range max(im.workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range jobs {
				outcome, reason, unavailable := im.one(ctx, f)
				record(f, outcome, reason, unavailable)
			}
		}()
	}
	sent := 0
feed:
	for _, f := range files {
		select {
		case jobs <- f:
			sent++
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	sum.notAttempted += len(files) - sent
	if sum.notAttempted > 0 && sum.stopped == "" {
		sum.stopped = "import interrupted"
	}
	close(stopLines)
	linesDone.Wait()
	if bar != nil {
		bar.Finish()
	}
	sum.elapsed = time.Since(start)
	return sum
}

// one imports a single file; it returns the outcome, a reason for failures, and whether
// the failure was the storage's (not the file's).
func (im *importer) one(ctx context.Context, f importFile) (string, string, bool) {
	if f.err != nil {
		return "failed", "cannot read: " + errText(f.err), false
	}
	if strings.EqualFold(filepath.Base(f.path), "DICOMDIR") {
		return "skipped", "", false
	}
	fh, err := os.Open(f.path)
	if err != nil {
		return "failed", "cannot read: " + errText(err), false
	}
	defer fh.Close()
	// Fast path: same SOP Instance UID, same size and same bytes are already present.
	if uid := ingest.PeekSOPInstanceUID(fh); uid != "" {
		if existing, err := im.idx.Instance(ctx, uid); err == nil && existing.Size == f.size {
			if _, err := fh.Seek(0, io.SeekStart); err == nil {
				if sum, _, err := ingest.Hash(fh); err == nil && sum == existing.SHA256 {
					return "present", "", false
				}
			}
		}
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return "failed", "cannot read: " + errText(err), false
	}
	res, err := im.p.IngestFile(ctx, fh, f.size, ingest.Source{Via: "import"})
	if err != nil && ctx.Err() != nil {
		return "interrupted", "", false // the import is stopping; not this file's fault
	}
	if err != nil {
		var ie *ingest.Error
		if errors.As(err, &ie) {
			reason := ie.Reason
			if errors.Is(err, ingest.ErrUnavailable) && ie.Err != nil {
				reason += ": " + ie.Err.Error()
			}
			return "failed", ie.Kind.Error() + ": " + reason, errors.Is(err, ingest.ErrUnavailable)
		}
		return "failed", err.Error(), false
	}
	switch res.Outcome {
	case ingest.AlreadyStored:
		return "present", "", false
	case ingest.Replaced:
		return "replaced", "", false
	case ingest.KeptExisting:
		return "kept", "", false
	case ingest.Quarantined:
		return "quarantined", "", false
	}
	return "imported", "", false
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
