package main

import (
	"fmt"
	"time"

	"github.com/lumenpacs/lumen/service/ingest"
	"github.com/spf13/cobra"
)

func newFsckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fsck",
		Short: "Find (and repair) blobs without index rows and index rows without blobs",
		Long: `Compare the object store with the index. Orphan blobs (no index row, e.g. after a
crash between storing and indexing) and dangling rows (an index row whose blob is gone)
are reported. With --repair, valid orphans are re-indexed (invalid ones, and copies of an
already indexed identical object, are removed) and dangling rows are removed. Blobs
younger than --grace are skipped: an ingest may be about to index them.
Exit status: 0 clean or fully repaired, 1 inconsistencies remain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, b, err := setup(cmd)
			if err != nil {
				return err
			}
			defer b.Close()
			repair, _ := cmd.Flags().GetBool("repair")
			remove, _ := cmd.Flags().GetBool("remove-orphans")
			grace, _ := cmd.Flags().GetDuration("grace")
			days, _ := cmd.Flags().GetInt("recent-days")
			opts := ingest.CheckOptions{Grace: grace, Repair: repair, RemoveOrphans: remove}
			if grace == 0 {
				opts.Grace = -time.Nanosecond // 0 on the command line means no grace period
			}
			if days > 0 {
				opts.Prefixes = ingest.RecentPrefixes(time.Now(), days)
			}
			rep, err := b.pipeline.Check(cmd.Context(), opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			unresolved := 0
			for _, f := range rep.Findings {
				if f.Unresolved() {
					unresolved++
				}
				fmt.Fprintln(out, f.String())
			}
			fmt.Fprintf(out, "fsck: %d blobs, %d index rows checked; %d orphan blobs, %d dangling rows, %d stale temporary files; %d unresolved\n",
				rep.BlobsChecked, rep.RowsChecked, rep.Orphans(), rep.Dangling(), rep.Temps(), unresolved)
			if unresolved > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().Bool("repair", false, "repair what is found")
	cmd.Flags().Bool("remove-orphans", false, "with --repair, remove orphan blobs instead of re-indexing them")
	cmd.Flags().Duration("grace", 10*time.Minute, "skip blobs modified more recently than this (0: none)")
	cmd.Flags().Int("recent-days", 0, "only check blobs stored in the last N days (0: everything)")
	return cmd
}
