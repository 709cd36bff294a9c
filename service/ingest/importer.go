package ingest

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
	"time"
)

// ImportFile is a file named for import, as ListFiles found it.
type ImportFile struct {
	Path string // as named or found under a named directory
	Size int64  // in bytes, 0 when Err is set
	// Err is the error met while listing the file (it cannot be read), without the path
	// (Path names it); nil otherwise.
	Err error
}

// ListFiles lists the regular files named by paths: files as given, directories
// recursively, in lexical order within each directory. Symbolic links to files are
// followed; links to directories are not (no loops). A path that cannot be listed is
// returned with its Err set.
func ListFiles(paths []string) []ImportFile {
	var out []ImportFile
	unreadable := func(p string, err error) { out = append(out, ImportFile{Path: p, Err: withoutPath(err)}) }
	for _, root := range paths {
		st, err := os.Stat(root)
		if err != nil {
			unreadable(root, err)
			continue
		}
		if !st.IsDir() {
			out = append(out, ImportFile{Path: root, Size: st.Size()})
			continue
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				unreadable(p, err)
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				st, err := os.Stat(p)
				switch {
				case err != nil:
					unreadable(p, err)
				case st.Mode().IsRegular():
					out = append(out, ImportFile{Path: p, Size: st.Size()})
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				unreadable(p, err)
				return nil
			}
			out = append(out, ImportFile{Path: p, Size: info.Size()})
			return nil
		})
	}
	return out
}

// withoutPath drops the path from a file system error, for messages that name the file
// already.
func withoutPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Importer imports PS3.10 files from the file system through a Pipeline with parallel
// workers (the bulk import of `lumen import`). A file whose SOP Instance UID is indexed
// with the same size and object digest counts as present without being ingested again, so a
// re-run is cheap. Each file is ingested with Source{Via: "import"}. An Importer may run
// several imports, one after the other or at once.
type Importer struct {
	// Pipeline ingests the files; its Index answers the already-present check.
	Pipeline *Pipeline
	// Workers is the number of files imported at once (at least 1).
	Workers int
	// Progress, if set, is called once the files are listed (DoneFiles 0), then after
	// each file, one call at a time and in order; it should return quickly.
	Progress func(ImportProgress)
}

// ImportProgress is the state of a running import.
type ImportProgress struct {
	Files     int   // files listed
	Bytes     int64 // their total size
	DoneFiles int   // files finished, whatever their outcome
	DoneBytes int64 // total size of the finished files
}

// ImportSummary is the outcome of an import. Every listed file is counted in exactly one
// of Imported, Present, Replaced, Kept, Quarantined, Skipped, Failed and NotAttempted.
type ImportSummary struct {
	Files       int // files listed
	Imported    int // stored as new instances
	Present     int // already stored (the same data set, whatever its encoding)
	Replaced    int // different content under a stored SOP Instance UID, replacing it (policy Replace)
	Kept        int // different content under a stored SOP Instance UID, not stored (policy KeepFirst)
	Quarantined int // different content under a stored SOP Instance UID, kept aside (policy Quarantine)
	Skipped     int // DICOMDIR media directories, which are not instances
	Failed      int // refused or unreadable: one entry each in Failures
	// NotAttempted files were not imported because the import stopped (Stopped says why).
	NotAttempted int
	// Bytes is the total size of the files imported, present, replaced or quarantined.
	Bytes int64
	// Elapsed is the wall time of the import, listing included.
	Elapsed time.Duration
	// Failures lists the failed files, in the order they finished.
	Failures []ImportFailure
	// Stopped says why the import stopped before the end ("" when it did not):
	// "import interrupted" when the context was cancelled, "import stopped after
	// repeated storage failures" after MaxUnavailable files in a row failed with
	// ErrUnavailable.
	Stopped string
}

// ImportFailure is a file that failed to import and why, in words free of patient data:
// "cannot read: " and the system's error, or the ingest.Error's kind and reason (with
// the cause for ErrUnavailable).
type ImportFailure struct {
	Path, Reason string
}

// MaxUnavailable consecutive files failing with ErrUnavailable (the store or the index
// is down) stop an import: the rest are not attempted.
const MaxUnavailable = 10

// What became of one file.
type importOutcome int

const (
	outImported importOutcome = iota
	outPresent
	outReplaced
	outKept
	outQuarantined
	outSkipped
	outInterrupted // the import is stopping: not this file's fault
	outFailed
)

// Run imports the files ListFiles finds under paths and returns the summary. It stops
// early when ctx is cancelled, or after MaxUnavailable storage failures in a row; the
// files not imported then are counted in NotAttempted.
func (im *Importer) Run(ctx context.Context, paths []string) *ImportSummary {
	start := time.Now()
	files := ListFiles(paths)
	state := ImportProgress{Files: len(files)}
	for _, f := range files {
		state.Bytes += f.Size
	}
	sum := &ImportSummary{Files: len(files)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if im.Progress != nil {
		im.Progress(state)
	}

	var mu sync.Mutex
	consecutiveUnavailable := 0
	record := func(f ImportFile, outcome importOutcome, reason string, unavailable bool) {
		mu.Lock()
		defer mu.Unlock()
		switch outcome {
		case outImported:
			sum.Imported++
			sum.Bytes += f.Size
		case outPresent:
			sum.Present++
			sum.Bytes += f.Size
		case outReplaced:
			sum.Replaced++
			sum.Bytes += f.Size
		case outKept:
			sum.Kept++
		case outQuarantined:
			sum.Quarantined++
			sum.Bytes += f.Size
		case outSkipped:
			sum.Skipped++
		case outInterrupted:
			sum.NotAttempted++
		case outFailed:
			sum.Failed++
			sum.Failures = append(sum.Failures, ImportFailure{f.Path, reason})
		}
		if unavailable {
			consecutiveUnavailable++
			if consecutiveUnavailable >= MaxUnavailable && sum.Stopped == "" {
				sum.Stopped = "import stopped after repeated storage failures"
				cancel()
			}
		} else if outcome != outFailed {
			consecutiveUnavailable = 0
		}
		state.DoneFiles++
		state.DoneBytes += f.Size
		if im.Progress != nil {
			im.Progress(state)
		}
	}

	jobs := make(chan ImportFile)
	var wg sync.WaitGroup
	for range max(im.Workers, 1) {
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
	sum.NotAttempted += len(files) - sent
	if sum.NotAttempted > 0 && sum.Stopped == "" {
		sum.Stopped = "import interrupted"
	}
	sum.Elapsed = time.Since(start)
	return sum
}

// one imports a single file; it returns the outcome, a reason for failures, and whether
// the failure was the storage's (not the file's).
func (im *Importer) one(ctx context.Context, f ImportFile) (importOutcome, string, bool) {
	if f.Err != nil {
		return outFailed, "cannot read: " + withoutPath(f.Err).Error(), false
	}
	if strings.EqualFold(filepath.Base(f.Path), "DICOMDIR") {
		return outSkipped, "", false
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return outFailed, "cannot read: " + withoutPath(err).Error(), false
	}
	defer fh.Close()
	// Fast path: same SOP Instance UID, same size and same bytes are already present.
	if uid := PeekSOPInstanceUID(fh); uid != "" {
		if existing, err := im.Pipeline.Index.Instance(ctx, uid); err == nil && existing.Size == f.Size {
			if _, err := fh.Seek(0, io.SeekStart); err == nil {
				if sum, _, err := Hash(fh, existing.Digest); err == nil && sum == existing.Digest {
					return outPresent, "", false
				}
			}
		}
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return outFailed, "cannot read: " + withoutPath(err).Error(), false
	}
	res, err := im.Pipeline.IngestFile(ctx, fh, f.Size, Source{Via: "import"})
	if err != nil && ctx.Err() != nil {
		return outInterrupted, "", false
	}
	if err != nil {
		var ie *Error
		if errors.As(err, &ie) {
			reason := ie.Reason
			if errors.Is(err, ErrUnavailable) && ie.Err != nil {
				reason += ": " + ie.Err.Error()
			}
			return outFailed, ie.Kind.Error() + ": " + reason, errors.Is(err, ErrUnavailable)
		}
		return outFailed, err.Error(), false
	}
	switch res.Outcome {
	case AlreadyStored:
		return outPresent, "", false
	case Replaced:
		return outReplaced, "", false
	case KeptExisting:
		return outKept, "", false
	case Quarantined:
		return outQuarantined, "", false
	}
	return outImported, "", false
}

// Print writes the summary as `lumen import` prints it: the counts, then the failed
// files sorted by path.
func (s *ImportSummary) Print(w io.Writer) {
	secs := s.Elapsed.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	fmt.Fprintf(w, "import: %d files, %.1f MB in %s (%.1f files/s, %.1f MB/s)\n",
		s.Files, float64(s.Bytes)/1e6, s.Elapsed.Round(time.Millisecond), float64(s.Files-s.NotAttempted)/secs, float64(s.Bytes)/1e6/secs)
	fmt.Fprintf(w, "  imported:        %d\n", s.Imported)
	fmt.Fprintf(w, "  already present: %d\n", s.Present)
	if s.Replaced > 0 {
		fmt.Fprintf(w, "  replaced:        %d\n", s.Replaced)
	}
	if s.Kept > 0 {
		fmt.Fprintf(w, "  kept existing:   %d (different content, duplicate policy keep-first)\n", s.Kept)
	}
	if s.Quarantined > 0 {
		fmt.Fprintf(w, "  quarantined:     %d (SOP Instance UID stored with other content: kept aside, the stored copy stays served; see GET /api/v1/quarantine)\n", s.Quarantined)
	}
	if s.Skipped > 0 {
		fmt.Fprintf(w, "  skipped:         %d (DICOMDIR media directories)\n", s.Skipped)
	}
	fmt.Fprintf(w, "  failed:          %d\n", s.Failed)
	if s.NotAttempted > 0 {
		fmt.Fprintf(w, "  not imported:    %d (%s; run the import again)\n", s.NotAttempted, s.Stopped)
	}
	if len(s.Failures) > 0 {
		sort.Slice(s.Failures, func(i, j int) bool { return s.Failures[i].Path < s.Failures[j].Path })
		fmt.Fprintln(w, "failed files:")
		for _, f := range s.Failures {
			fmt.Fprintf(w, "  %s: %s\n", f.Path, f.Reason)
		}
	}
}
