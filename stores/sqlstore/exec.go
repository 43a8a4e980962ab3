package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	randv2 "math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"
)

// Busy polling on SQLite: the first wait, and the longest; each is jittered around its value.
const (
	firstBusyWait = time.Millisecond
	maxBusyWait   = 25 * time.Millisecond
)

// exec runs a statement that returns no rows, as write runs a write.
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.write(ctx, func() error {
		var err error
		if st := s.prepared(ctx, query); st != nil {
			res, err = st.ExecContext(ctx, args...)
		} else {
			res, err = s.DB.ExecContext(ctx, query, args...)
		}
		return err
	})
	return res, err
}

// preparedStmt is a statement prepared on db.
type preparedStmt struct {
	db *sql.DB
	st *sql.Stmt
}

// prepared returns query prepared on the Store's DB, once per Store, on SQLite: its driver parses
// and plans every statement it is handed as text anew, a third of what a point read costs, where
// a prepared one (per connection, by database/sql) skips that. It returns nil on PostgreSQL, whose
// driver caches its statements itself, and when query cannot be prepared now (it is then run as
// text, and fails there if it must).
func (s *Store) prepared(ctx context.Context, query string) *sql.Stmt {
	if s.Dialect != SQLite {
		return nil
	}
	v, found := s.stmts.Load(query)
	if found && v.(*preparedStmt).db == s.DB {
		return v.(*preparedStmt).st
	}
	st, err := s.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	p := &preparedStmt{db: s.DB, st: st}
	if found && s.stmts.CompareAndSwap(query, v, p) {
		return st
	}
	if _, lost := s.stmts.LoadOrStore(query, p); !found && !lost {
		return st
	}
	st.Close() // another caller stored its own first
	return nil
}

// write runs f, a write, as retryBusy does. On SQLite, the writes of one Store take turns: the
// database takes one writer at a time anyway, and a writer that waits its turn here does not poll
// the database meanwhile. The turn and the database's lock are waited for BusyTimeout at most,
// together.
func (s *Store) write(ctx context.Context, f func() error) error {
	if s.Dialect != SQLite {
		return s.retryBusy(ctx, time.Time{}, f)
	}
	deadline := time.Now().Add(s.busyTimeout())
	s.writeOnce.Do(func() { s.writes = make(chan struct{}, 1) })
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case s.writes <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w (waiting for this process's other writes to the SQLite database)", ctx.Err())
	case <-t.C:
		return fmt.Errorf("this process's other writes to the SQLite database took %v and more", s.busyTimeout())
	}
	defer func() { <-s.writes }()
	return s.retryBusy(ctx, deadline, f)
}

// maxReadTries is how many times a read runs on connections that turn out to be dead.
const maxReadTries = 3

// readRetry runs f, a query, as retryBusy does; when it fails because its connection was dead (the
// server restarted, or the connection was terminated, since the pool last used it), it runs it
// again on another connection, a few times: a read changes nothing, and the pool has dropped the
// dead connection. A write is never run again so: it may have been done.
func (s *Store) readRetry(ctx context.Context, f func() error) error {
	var err error
	for range maxReadTries {
		if err = s.retryBusy(ctx, time.Time{}, f); err == nil || !connLost(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
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
	return s.readRetry(ctx, func() error {
		if st := s.prepared(ctx, query); st != nil {
			return st.QueryRowContext(ctx, args...).Scan(dest...)
		}
		return s.DB.QueryRowContext(ctx, query, args...).Scan(dest...)
	})
}

// queryStrings runs a query of one text column and returns its values.
func (s *Store) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	var out []string
	err := s.readRetry(ctx, func() error {
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
			err = describe(ctx, err)
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
				err = describe(ctx, err)
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

// describe returns err as the Store reports it: ctx's error when ctx ended, and a connection that
// broke under a statement said to be so (the driver's own words, such as "unexpected EOF", say
// little).
func describe(ctx context.Context, err error) error {
	if err = dbError(ctx, err); ctx.Err() == nil && connLost(err) && !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w: %w", errConnLost, err)
	}
	return err
}

// errConnLost says that a statement's connection broke: the server stopped or restarted, or the
// connection was terminated. Whether a write was done before is not known.
var errConnLost = errors.New("lost the connection to the database")

// connLost reports whether err says the connection broke, or could not be made.
func connLost(err error) bool {
	if errors.Is(err, errConnLost) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		switch state.SQLState() {
		case "57P01", "57P02", "57P03": // admin_shutdown (terminated), crash_shutdown, cannot_connect_now
			return true
		}
		return strings.HasPrefix(state.SQLState(), "08") // connection_exception
	}
	var nerr *net.OpError
	return errors.As(err, &nerr)
}
