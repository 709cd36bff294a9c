package sqlite

import (
	"context"

	"github.com/lumenpacs/lumen/index/sqlindex"
)

// WalBackstop is walBackstop (tests).
const WalBackstop = walBackstop

// OpenCheckpointed is Open, with a function that reports the background checkpointer's
// runs so far and the last one's log frames and frames in the database file.
func OpenCheckpointed(ctx context.Context, path string) (*sqlindex.DB, func() (runs, log, backfilled int64), error) {
	x, cp, err := open(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	return x, func() (int64, int64, int64) { return cp.runs.Load(), cp.logFrames.Load(), cp.backfilled.Load() }, nil
}
