package sqlindex

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/lumenpacs/lumen/index"
)

// DefaultQuietPeriod is how long after a study's last instance its thumbnail job
// becomes due.
const DefaultQuietPeriod = 10 * time.Second

func (x *DB) quiet() time.Duration {
	if x.QuietPeriod > 0 {
		return x.QuietPeriod
	}
	return DefaultQuietPeriod
}

const upsertJob = `INSERT INTO jobs (kind, key, not_before, created_at) VALUES (?, ?, ?, ?)
	ON CONFLICT (kind, key) DO UPDATE SET not_before = excluded.not_before`

// Enqueue implements index.Queue.
func (x *DB) Enqueue(ctx context.Context, kind, key string, notBefore time.Time) error {
	err := x.tx(ctx, func(tx *sql.Tx) error {
		_, err := x.exec(ctx, tx, upsertJob, kind, key, notBefore.UnixMilli(), nowMillis())
		return err
	})
	if err != nil {
		return fmt.Errorf("index: enqueue %s: %w", kind, err)
	}
	return nil
}

// ClaimJob implements index.Queue.
func (x *DB) ClaimJob(ctx context.Context, kind, worker string, lease time.Duration) (*index.Job, error) {
	var job *index.Job
	err := x.tx(ctx, func(tx *sql.Tx) error {
		job = nil
		now := nowMillis()
		var j index.Job
		var nb int64
		err := tx.QueryRowContext(ctx, x.d.rebind(`SELECT id, key, not_before, attempts FROM jobs
			WHERE kind = ? AND not_before <= ? AND claimed_until < ? ORDER BY not_before, id LIMIT 1`+x.d.SkipLocked),
			kind, now, now).Scan(&j.ID, &j.Key, &nb, &j.Attempts)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, x.d.rebind(`UPDATE jobs SET claimed_by = ?, claimed_until = ? WHERE id = ? AND claimed_until < ?`),
			worker, now+lease.Milliseconds(), j.ID, now)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			j.Kind, j.NotBefore = kind, time.UnixMilli(nb)
			job = &j
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("index: claim %s: %w", kind, err)
	}
	return job, nil
}

// CompleteJob implements index.Queue.
func (x *DB) CompleteJob(ctx context.Context, j *index.Job) error {
	err := x.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, x.d.rebind(`DELETE FROM jobs WHERE id = ? AND not_before = ?`), j.ID, j.NotBefore.UnixMilli())
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// Re-queued while we worked: release it so it runs again when due.
			_, err = tx.ExecContext(ctx, x.d.rebind(`UPDATE jobs SET claimed_by = '', claimed_until = 0, attempts = 0 WHERE id = ?`), j.ID)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("index: complete job %d: %w", j.ID, err)
	}
	return nil
}

// RetryJob implements index.Queue.
func (x *DB) RetryJob(ctx context.Context, j *index.Job, after time.Duration) error {
	err := x.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, x.d.rebind(`UPDATE jobs SET claimed_by = '', claimed_until = 0, attempts = attempts + 1,
			not_before = CASE WHEN not_before > ? THEN not_before ELSE ? END WHERE id = ?`),
			j.NotBefore.UnixMilli(), time.Now().Add(after).UnixMilli(), j.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("index: retry job %d: %w", j.ID, err)
	}
	return nil
}

// JobCounts returns how many jobs of each kind are queued (due or not, claimed or not).
func (x *DB) JobCounts(ctx context.Context) (map[string]int, error) {
	rows, err := x.db.QueryContext(ctx, `SELECT kind, COUNT(*) FROM jobs GROUP BY kind`)
	if err != nil {
		return nil, fmt.Errorf("index: job counts: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, fmt.Errorf("index: job counts: %w", err)
		}
		out[k] = n
	}
	return out, rows.Err()
}
