package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/leasepoll"
)

// abandonTimeout bounds the release of a lock that a failed statement may have taken.
const abandonTimeout = time.Second

// Lock takes key's lock, waiting until it is free or ctx is done; the error then Is ctx.Err().
//
// The lock is the row of key in the locks table, holding a random 128-bit ID of this holder and
// when its lease ends: ttl from the statement that took it (a ttl of zero or less means
// [twitchoauth.DefaultLockTTL]), by PostgreSQL's clock (clock_timestamp()), or on SQLite by the
// machine's. One statement takes it, inserting the row or taking over one whose lease has ended
// (INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <= now). The row outlives the connection
// that wrote it: a connection that drops (a terminated backend, a restarted server) frees no
// lock, and a holder that dies blocks the others until its lease ends. While another holder has
// the lock, Lock polls with jittered backoff from 5 ms up to 100 ms. A database error ends the
// wait at once: Lock never polls a database it cannot reach (on SQLite, a statement waits
// BusyTimeout at most for another connection's write lock first).
//
// The lock's writes commit without waiting for the disk (see execLock): a lock is a lease.
//
// unlock deletes the row only if it still holds this holder's ID, with a context of its own, so
// it works after ctx ended. When the lease already ran out and another holder took the lock
// since, unlock leaves it alone and returns nil. Calling unlock again does nothing and returns the
// first call's result. Its only errors are the database's; the lease ends the lock then.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (unlock func() error, err error) {
	l, err := s.lock(ctx, key, ttl, false)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// LockLease takes key's lock as Lock does and returns its lease, which Renew extends. It also
// reads key's token as it takes the lock, which [Store.LeaseRead] gives once: a refresh under the
// lock reads nothing more. On PostgreSQL the statement that takes the lock
// reads it; on SQLite a read on the same connection right after.
func (s *Store) LockLease(ctx context.Context, key string, ttl time.Duration) (twitchoauth.Lease, error) {
	l, err := s.lock(ctx, key, ttl, true)
	if err != nil {
		return nil, err // not a Lease holding a nil *lease
	}
	return l, nil
}

// lock takes key's lock; with load, it reads the token row as it takes it (see LockLease).
func (s *Store) lock(ctx context.Context, key string, ttl time.Duration, load bool) (*lease, error) {
	q, err := s.queries(ctx)
	if err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = twitchoauth.DefaultLockTTL
	}
	ms := max(ttl.Milliseconds(), 1)
	holder := newHolder()
	var read *lockRead // what the try that took the lock read
	try := func() (taken bool, err error) {
		switch {
		case load && q.lockLoad != "":
			read, err = s.lockAndRead(ctx, q, key, holder, ms)
			return read != nil, err
		case load && s.Dialect == SQLite:
			taken, read, err = s.lockThenRead(ctx, q, key, holder, ms)
			return taken, err
		}
		res, err := s.execLock(ctx, q.lock, key, holder, ms)
		if err != nil {
			return false, err
		}
		n, err := res.RowsAffected()
		return n == 1, err
	}
	abandon := func(error) { s.abandon(ctx, q, key, holder) }
	if err := leasepoll.Poll(ctx, try, abandon); err != nil {
		return nil, fmt.Errorf("sqlstore: lock key %s: %w", twitchoauth.QuoteKey(key), err)
	}
	l := &lease{s: s, q: q, key: key, holder: holder, ms: ms, unlock: s.unlocker(ctx, q, key, holder)}
	l.read.Store(read)
	return l, nil
}

// execLock runs a write of the locks table, as exec runs a write, without waiting for the disk:
// a lock is a lease, whose loss in a crash of the machine frees it early (the fenced saves and
// spending marks, which do wait for the disk, still keep a second holder from storing over the
// first or spending its refresh token) or keeps it until its lease ends. On PostgreSQL the
// statements say so themselves (see newQueries). On SQLite, in WAL mode, the statement runs on a
// connection set to synchronous NORMAL for it, and set back after; a connection that cannot be
// set back is dropped from the pool.
func (s *Store) execLock(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s.Dialect != SQLite {
		return s.exec(ctx, query, args...)
	}
	var res sql.Result
	err := s.onLockConn(ctx, func(conn *sql.Conn) error {
		var err error
		res, err = conn.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// onLockConn runs f, a lock's write on SQLite, as write runs a write, on a connection set to
// synchronous NORMAL for it (see execLock).
func (s *Store) onLockConn(ctx context.Context, f func(conn *sql.Conn) error) error {
	return s.write(ctx, func() error {
		conn, err := s.DB.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		mode, err := s.lockSyncMode(ctx, conn)
		if err != nil {
			return err
		}
		if mode == "" {
			return f(conn)
		}
		if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
			return err
		}
		err = f(conn)
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = "+mode); rerr != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn }) // never back in the pool unsynced
		}
		return err
	})
}

// lockThenRead takes key's lock on SQLite and, when it took it, reads the token row on the same
// connection, whose pages the lock's write has just brought up to date. A read that fails leaves
// the lock taken with no read: the refresh under it then loads the token as it would without one.
func (s *Store) lockThenRead(ctx context.Context, q *queries, key, holder string, ms int64) (taken bool, read *lockRead, err error) {
	err = s.onLockConn(ctx, func(conn *sql.Conn) error {
		res, err := conn.ExecContext(ctx, q.lock, key, holder, ms)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		taken = true
		r := &lockRead{found: true}
		switch err := conn.QueryRowContext(ctx, q.load, key).Scan(&r.r.token, &r.r.sealed, &r.r.keyID, &r.r.version); {
		case errors.Is(err, sql.ErrNoRows):
			read = &lockRead{}
		case err == nil:
			read = r
		}
		return nil
	})
	return taken, read, err
}

// lockSyncMode returns the synchronous setting to set back after a lock's write on SQLite, or ""
// when there is nothing to change: NORMAL or less already, or a journal other than WAL, whose
// NORMAL is not safe against corruption. It asks conn once per Store: every connection of the
// pool is opened with the same settings.
func (s *Store) lockSyncMode(ctx context.Context, conn *sql.Conn) (string, error) {
	s.lockSyncMu.Lock()
	defer s.lockSyncMu.Unlock()
	if s.lockSync != nil {
		return *s.lockSync, nil
	}
	var mode, journal string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
		return "", err
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&mode); err != nil {
		return "", err
	}
	if !strings.EqualFold(journal, "wal") || (mode != "2" && mode != "3") {
		mode = ""
	}
	s.lockSync = &mode
	return mode, nil
}

// abandon releases, as well as it can, a lock that a failed statement may have taken after all:
// one cut off when ctx ended, or whose connection dropped after the server ran it.
func (s *Store) abandon(ctx context.Context, q *queries, key, holder string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	s.DB.ExecContext(ctx, q.unlock, key, holder)
}

// unlocker returns the release of key's lock held as holder.
func (s *Store) unlocker(ctx context.Context, q *queries, key, holder string) func() error {
	return leasepoll.Unlocker(ctx, func(ctx context.Context) error {
		// No row deleted means the lease ran out and another holder took the lock: left alone.
		if _, err := s.execLock(ctx, q.unlock, key, holder); err != nil {
			return fmt.Errorf("sqlstore: unlock key %s: %w", twitchoauth.QuoteKey(key), err)
		}
		return nil
	})
}

// newHolder returns a random ID of one holder of a lock: 128 bits, in hex.
func newHolder() string {
	var b [16]byte
	rand.Read(b[:]) // never fails; see crypto/rand.Read
	return hex.EncodeToString(b[:])
}

// lockRead is the token row as the statement that took a lock read it.
type lockRead struct {
	found bool // a token row was there
	r     row
}

// lockAndRead runs q.lockLoad: it returns the row it read when it took the lock, and nil when
// another holder has it.
func (s *Store) lockAndRead(ctx context.Context, q *queries, key, holder string, ms int64) (*lockRead, error) {
	var read *lockRead
	err := s.write(ctx, func() error {
		rows, err := s.DB.QueryContext(ctx, q.lockLoad, key, holder, ms)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			return rows.Err()
		}
		var token, keyID sql.NullString
		var sealed []byte
		var version sql.NullInt64
		if err := rows.Scan(&token, &sealed, &keyID, &version); err != nil {
			return err
		}
		read = &lockRead{found: token.Valid, r: row{token: token.String, sealed: sealed, keyID: keyID, version: version.Int64}}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return read, nil
}

// lease is a lock held as holder.
type lease struct {
	s      *Store
	q      *queries
	key    string
	holder string
	ms     int64 // the ttl, in milliseconds
	unlock func() error
	read   atomic.Pointer[lockRead] // the token as the lock was taken, until LeaseRead gives it
	saved  atomic.Bool              // SaveIfUnlock stored its token and released the lock
}

// LeaseRead gives, once, the token key held as the lock held was taken by this Store's LockLease,
// as Load would have returned it then; see [twitchoauth.LeaseReader]. A lease of another Store,
// one taken without that read (Lock's, or one whose read failed), and one whose read found no
// token give none.
func (s *Store) LeaseRead(held twitchoauth.Lease) (*twitchoauth.StoredToken, bool, error) {
	l, ok := held.(*lease)
	if !ok || l.s != s {
		return nil, false, nil
	}
	read := l.read.Swap(nil)
	if read == nil {
		return nil, false, nil
	}
	if !read.found {
		// The statement's snapshot may predate a row stored while it waited for the lock.
		return nil, false, nil
	}
	st, err := s.decode(l.key, &read.r)
	if err == nil {
		s.remember(l.key, &read.r, st)
	}
	return st, true, err
}

// SaveIfUnlock stores next under key as SaveIf does and, when it stores it, releases held, key's
// lock as this Store's LockLease took it, in the same commit: on PostgreSQL in the UPDATE's own
// statement, on SQLite in its transaction. The lease's Unlock then does nothing. When it stores
// nothing, the lock is held as before. A lease of another Store or key gives
// errors.ErrUnsupported; see [twitchoauth.ReleasingSaver].
func (s *Store) SaveIfUnlock(ctx context.Context, held twitchoauth.Lease, key string, prev, next *twitchoauth.StoredToken) error {
	l, ok := held.(*lease)
	if !ok || l.s != s || l.key != key {
		return fmt.Errorf("sqlstore: save token: %w: not a lock this Store took on key %s", errors.ErrUnsupported, twitchoauth.QuoteKey(key))
	}
	if err := s.saveIf(ctx, key, l.holder, prev, next); err != nil {
		return err
	}
	l.saved.Store(true)
	return nil
}

// Renew sets the lease to end ttl from now (the ttl it was taken with, by the database's clock),
// in one statement that changes the row only while it holds this holder's ID and its lease has
// not ended. Otherwise the lease has run out, and the lock is free or another's: the error then
// Is [twitchoauth.ErrLeaseLost]. Any other error is the database's, and leaves the lease as it
// was.
func (l *lease) Renew(ctx context.Context) error {
	res, err := l.s.execLock(ctx, l.q.renew, l.key, l.holder, l.ms)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return fmt.Errorf("sqlstore: renew lock of key %s: %w", twitchoauth.QuoteKey(l.key), err)
	}
	if n == 0 {
		return fmt.Errorf("sqlstore: renew lock of key %s: %w", twitchoauth.QuoteKey(l.key), twitchoauth.ErrLeaseLost)
	}
	return nil
}

// Unlock releases the lock as the unlock function of Lock does; after a SaveIfUnlock that stored
// its token, it has nothing to release.
func (l *lease) Unlock() error {
	if l.saved.Load() {
		return nil
	}
	return l.unlock()
}
