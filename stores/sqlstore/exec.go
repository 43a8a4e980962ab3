package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	randv2 "math/rand/v2"
	"strings"
	"time"
)

// Busy polling on SQLite: the first wait, and the longest; each is jittered around its value.
const (
	firstBusyWait = time.Millisecond
	maxBusyWait   = 25 * time.Millisecond
)

// exec runs a statement that returns no rows. On SQLite, the writes of one Store take turns: the
// database takes one writer at a time anyway, and a writer that waits its turn here does not poll
// the database meanwhile. The turn and the database's lock are waited for BusyTimeout at most,
// together.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	run := func() error {
		var err error
		res, err = s.DB.ExecContext(ctx, query, args...)
		return err
	}
	if s.Dialect != SQLite {
		return res, s.retryBusy(ctx, time.Time{}, run)
	}
	deadline := time.Now().Add(s.busyTimeout())
	s.writeOnce.Do(func() { s.writes = make(chan struct{}, 1) })
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case s.writes <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w (waiting for this process's other writes to the SQLite database)", ctx.Err())
	case <-t.C:
		return nil, fmt.Errorf("this process's other writes to the SQLite database took %v and more", s.busyTimeout())
	}
	defer func() { <-s.writes }()
	return res, s.retryBusy(ctx, deadline, run)
}

// busyTimeout returns BusyTimeout, or its default.
func (s *Store) busyTimeout() time.Duration {
	if s.BusyTimeout <= 0 {
		return DefaultBusyTimeout
	}
	return s.BusyTimeout
}

// queryRow runs a query of one row and scans it into dest; its error Is sql.ErrNoRows when there
// is none.
func (s *Store) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	return s.retryBusy(ctx, time.Time{}, func() error { return s.DB.QueryRowContext(ctx, query, args...).Scan(dest...) })
}

// queryStrings runs a query of one text column and returns its values.
func (s *Store) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	var out []string
	err := s.retryBusy(ctx, time.Time{}, func() error {
		out = out[:0]
		rows, err := s.DB.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}

// retryBusy runs f, and on SQLite runs it again while it fails because another connection holds
// the database's lock (SQLITE_BUSY, SQLITE_LOCKED), polling with jittered backoff until deadline
// (zero: BusyTimeout from now). A statement that failed so did nothing, so running it again is
// safe. Any other error, and any error on PostgreSQL, is returned at once; when ctx ended, its
// error is returned.
func (s *Store) retryBusy(ctx context.Context, deadline time.Time, f func() error) error {
	err := f()
	if err == nil || s.Dialect != SQLite || !isBusy(err) {
		if err != nil {
			err = dbError(ctx, err)
		}
		return err
	}
	if deadline.IsZero() {
		deadline = time.Now().Add(s.busyTimeout())
	}
	wait := firstBusyWait
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("another connection held the SQLite database's lock for %v and more: %w", s.busyTimeout(), err)
		}
		t := time.NewTimer(min(wait/2+randv2.N(wait), left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (waiting for another connection's lock on the SQLite database: %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, maxBusyWait)
		if err = f(); err == nil || !isBusy(err) {
			if err != nil {
				err = dbError(ctx, err)
			}
			return err
		}
	}
}

// isBusy reports whether err is SQLite's "the database is locked" (SQLITE_BUSY) or "a table is
// locked" (SQLITE_LOCKED), as modernc.org/sqlite reports them (an error with a Code method) or,
// for other drivers, as their messages say.
func isBusy(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		switch coded.Code() & 0xff {
		case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
			return true
		}
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "database is locked") || strings.Contains(msg, "database table is locked") ||
		strings.Contains(msg, "SQLITE_BUSY")
}
