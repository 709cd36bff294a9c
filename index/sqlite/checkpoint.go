package sqlite

import (
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointInterval is the shortest time between two background checkpoints: the
// commits of that time go into the database file together, each page once.
const checkpointInterval = 100 * time.Millisecond

// walBackstop is the size of the write-ahead log, in pages, at which a committing
// connection checkpoints the log itself (wal_autocheckpoint), in its commit's time:
// only when the background checkpointer falls behind. SQLite's default is 1,000.
const walBackstop = 16384

// checkpointer copies the pages of committed transactions from the write-ahead log
// into the database file (a PASSIVE checkpoint) on a connection of its own, after the
// commits that wake it, at most once per checkpointInterval. By default SQLite does
// it inside the commit that makes the log reach 1,000 pages: that writer, and the
// group commit waiting behind it, pays for writing back pages spread over the whole
// file and syncing it, a cost that grows with the size of the index. A checkpoint
// takes no lock that writers or readers wait for; it copies what no reader still
// needs, and the next checkpoint copies the rest.
type checkpointer struct {
	db   *sql.DB
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once // close

	// The last checkpoint's outcome (tests): the log's frames, those in the database
	// file, and checkpoints run.
	logFrames, backfilled, runs atomic.Int64
}

// startCheckpointer opens its connection to dsn and starts it.
func startCheckpointer(dsn string) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// wake asks for a checkpoint; it does not block.
func (c *checkpointer) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	t := time.NewTimer(checkpointInterval)
	t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		t.Reset(checkpointInterval)
		select {
		case <-c.stop:
			t.Stop()
			return
		case <-t.C:
		}
		// A failure (SQLITE_BUSY: another process is checkpointing) leaves the pages
		// to the next checkpoint, or to the committing connection's (walBackstop).
		var busy, log, done int64
		if c.db.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done) == nil {
			c.logFrames.Store(log)
			c.backfilled.Store(done)
			c.runs.Add(1)
		}
	}
}

// close stops the checkpointer and closes its connection; later calls do nothing.
func (c *checkpointer) close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.db.Close()
	})
}
