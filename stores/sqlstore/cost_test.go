package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

// TestLockWritesLeaveTokenWritesDurable: a lock's writes skip waiting for the disk, and that
// stays with them: on the one connection of the pool, a token write after a lock, a renewal and
// an unlock runs as durably as the database is set up to (PostgreSQL: synchronous_commit on;
// SQLite: synchronous FULL).
func TestLockWritesLeaveTokenWritesDurable(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		s := open(t)(t)
		s.DB.SetMaxOpenConns(1)
		ctx := t.Context()
		if err := s.Save(ctx, "k", benchToken(0)); err != nil {
			t.Fatal(err)
		}
		lease, err := s.LockLease(ctx, "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := lease.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if err := lease.Unlock(); err != nil {
			t.Fatal(err)
		}
		query, want := "SHOW synchronous_commit", "on"
		if s.Dialect == SQLite {
			query, want = "PRAGMA synchronous", "2"
		}
		var got string
		if err := s.DB.QueryRowContext(ctx, query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("after a lock's writes, %s = %s on the pool's connection; want %s: token writes would not wait for the disk", query, got, want)
		}
	})
}

// TestSaveIfWithoutReadIsFenced: SaveIf of the token a Store last read updates the row without
// reading it again, but only while the row holds what was read: not after another replica wrote
// it, nor after it deleted the row and stored another token, whose row starts again at the same
// version.
func TestSaveIfWithoutReadIsFenced(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		connect := open(t)
		a, b := connect(t), connect(t)
		ctx := t.Context()
		for _, how := range []string{"written", "deleted and stored again"} {
			key := "k-" + how
			if err := a.Save(ctx, key, benchToken(1)); err != nil {
				t.Fatal(err)
			}
			read, err := a.Load(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if how == "written" {
				err = b.SaveIf(ctx, key, read, benchToken(2))
			} else if err = b.Delete(ctx, key); err == nil {
				err = b.Save(ctx, key, benchToken(2))
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := a.SaveIf(ctx, key, read, benchToken(3)); !errors.Is(err, twitchoauth.ErrTokenChanged) {
				t.Errorf("%s: SaveIf of the token read before = %v; want ErrTokenChanged", how, err)
			}
			if cur, err := b.Load(ctx, key); err != nil || cur.AccessToken != benchToken(2).AccessToken {
				t.Errorf("%s: the row holds %v, %v; want the other replica's token", how, cur, err)
			}
		}
		// And the read it saves: the row a Store read, then its own SaveIf wrote, is written again.
		cur, err := a.Load(ctx, "k-written")
		if err != nil {
			t.Fatal(err)
		}
		for i := 10; i < 13; i++ {
			next := benchToken(i)
			if err := a.SaveIf(ctx, "k-written", cur, next); err != nil {
				t.Fatalf("SaveIf #%d after the Store's own writes: %v", i, err)
			}
			cur = next
		}
	})
}

// TestLockReadSeesReleasingSave: a lock taken after waiting for the holder before reads the token
// as that holder's last write left it. The holder's save and its release of the lock commit
// together (SaveIfUnlock); the next holder's statement, begun before that commit and waiting on
// the lock's row, must not read the token row as its snapshot had it: it would refresh a token
// already refreshed, or spend a refresh token already spent.
func TestLockReadSeesReleasingSave(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	prefix := uniquePrefix()
	a := pgStore(t, srv, prefix)
	b := New(pgDB(t, srv, "lock-reader"), Postgres)
	b.Prefix = prefix
	ctx := t.Context()
	if err := a.Save(ctx, "k", benchToken(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LockLease(ctx, "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	// The holder's last write, as SaveIfUnlock makes it, held open.
	next, err := json.Marshal(benchToken(2))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := a.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "UPDATE "+prefix+"tokens SET token = $2, version = version + 1 WHERE key = $1", "k", string(next)); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+prefix+"locks WHERE key = $1", "k"); err != nil {
		t.Fatal(err)
	}
	got := lockLater(ctx, b)
	waitBlocked(t, a.DB, "lock-reader", got) // commit once the next holder's statement waits on the lock's row
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.lease.Unlock()
	st, ok, err := b.LeaseRead(r.lease)
	if !ok || err != nil {
		t.Fatalf("the lock's read: %v, %v", ok, err)
	}
	if st.AccessToken != benchToken(2).AccessToken {
		t.Errorf("the lock's read gave the token before the holder's last write (%v); want the one it stored as it let go", st.AccessToken == benchToken(1).AccessToken)
	}
}

// TestPreparedFollowsDB: SQLite statements are prepared once per Store, on its DB; a Store whose DB
// is set to another database reads and writes that one, not the one its statements were prepared
// on.
func TestPreparedFollowsDB(t *testing.T) {
	t.Parallel()
	first, second := sqliteStore(t, sqliteFile(t)), sqliteStore(t, sqliteFile(t))
	ctx := t.Context()
	if err := first.Save(ctx, "k", benchToken(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := first.Load(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Load(ctx, "k"); !errors.Is(err, twitchoauth.ErrTokenNotFound) {
		t.Fatalf("the second database: %v; want ErrTokenNotFound", err)
	}
	first.DB = second.DB
	if st, err := first.Load(ctx, "k"); !errors.Is(err, twitchoauth.ErrTokenNotFound) {
		t.Errorf("Load after DB was set to another database = %v, %v; want ErrTokenNotFound, as that database holds", st != nil, err)
	}
	if err := first.Save(ctx, "k", benchToken(2)); err != nil {
		t.Fatal(err)
	}
	if st, err := second.Load(ctx, "k"); err != nil || st.AccessToken != benchToken(2).AccessToken {
		t.Errorf("the database DB was set to holds %v, %v; want the token saved after", st != nil, err)
	}
}

// TestReleasingSaveBesideNextLock: a holder whose lease ran out makes its last save, which
// releases its lock, while the next holder takes the lock over; both wait on a third session that
// holds the token row. Neither may fail for the other: the save locks the lock row before the
// token row, as the lock statement does, so the two never wait on each other (PostgreSQL would
// abort one as a deadlock).
func TestReleasingSaveBesideNextLock(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	prefix := uniquePrefix()
	releaser := New(pgDB(t, srv, "releasing-saver"), Postgres)
	releaser.Prefix = prefix
	locker := New(pgDB(t, srv, "next-locker"), Postgres)
	locker.Prefix = prefix
	ctx := t.Context()
	if err := releaser.Save(ctx, "k", benchToken(1)); err != nil {
		t.Fatal(err)
	}
	prev, err := releaser.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	held, err := releaser.LockLease(ctx, "k", time.Millisecond) // over before anyone waits
	if err != nil {
		t.Fatal(err)
	}
	// A third session holds the token row until both wait.
	tx, err := releaser.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT 1 FROM "+prefix+"tokens WHERE key = $1 FOR UPDATE", "k"); err != nil {
		t.Fatal(err)
	}
	saved, locked := make(chan error, 1), make(chan error, 1)
	var next twitchoauth.Lease
	go func() { saved <- releaser.SaveIfUnlock(ctx, held, "k", prev, benchToken(2)) }()
	waitBlocked(t, releaser.DB, "releasing-saver", nil)
	go func() {
		var err error
		next, err = locker.LockLease(ctx, "k", time.Minute)
		locked <- err
	}()
	waitBlocked(t, releaser.DB, "next-locker", nil)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-saved; err != nil {
		t.Errorf("the last save: %v", err)
	}
	if err := <-locked; err != nil {
		t.Fatalf("the next lock: %v", err)
	}
	defer next.Unlock()
	if st, ok, err := locker.LeaseRead(next); ok && (err != nil || st.AccessToken != benchToken(2).AccessToken) {
		t.Errorf("the next lock's read: %v; want the token saved as the lock was let go", err)
	}
}

// taken is a lease asked for in the background, and its error.
type taken struct {
	lease twitchoauth.Lease
	err   error
}

// lockLater asks s for key "k"'s lease in a goroutine of its own.
func lockLater(ctx context.Context, s *Store) <-chan taken {
	got := make(chan taken, 1)
	go func() {
		l, err := s.LockLease(ctx, "k", time.Minute)
		got <- taken{l, err}
	}()
	return got
}

// waitBlocked returns once a statement of the application named app waits for a lock. A lease
// got first (nil: none is asked for) was granted while it should have waited: the test fails.
func waitBlocked(t *testing.T, db *sql.DB, app string, got <-chan taken) {
	t.Helper()
	for {
		var waiting bool
		err := db.QueryRowContext(t.Context(), "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", app).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case r := <-got:
			t.Fatalf("the lock was taken while its holder held it: %v", r.err)
		case <-time.After(time.Millisecond):
		}
	}
}

// TestLockReadSeesTokenStoredWhileWaiting: a lock taken after waiting for the holder before does
// not say "no token" for a key whose first token was stored while it waited: the lock statement's
// snapshot is older than that row, which no lock on it can bring into view. A read that finds no
// token is not given; the work under the lock loads it.
func TestLockReadSeesTokenStoredWhileWaiting(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	prefix := uniquePrefix()
	a := pgStore(t, srv, prefix)
	b := New(pgDB(t, srv, "lock-reader-new-row"), Postgres)
	b.Prefix = prefix
	ctx := t.Context()
	if _, err := a.Lock(ctx, "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	// The holder's release, held open.
	tx, err := a.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+prefix+"locks WHERE key = $1", "k"); err != nil {
		t.Fatal(err)
	}
	got := lockLater(ctx, b)
	waitBlocked(t, a.DB, "lock-reader-new-row", got)
	if err := a.Save(ctx, "k", benchToken(1)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.lease.Unlock()
	if st, ok, err := b.LeaseRead(r.lease); ok && (err != nil || st.AccessToken != benchToken(1).AccessToken) {
		t.Errorf("the lock's read gave %v (a token: %v); want the token stored while it waited, or no read", err, st != nil)
	}
}

// TestSaveIfUnlockOneConnection: on SQLite with a pool of one connection (":memory:", which Open
// limits so, or a program's SetMaxOpenConns(1)), the save that releases the lock prepares its
// statements before its transaction takes the connection: prepared within it, they waited for a
// second connection until ctx ended, and the refreshed pair was not stored.
func TestSaveIfUnlockOneConnection(t *testing.T) {
	for _, dsn := range []string{":memory:", "file"} {
		t.Run(dsn, func(t *testing.T) {
			if dsn == "file" {
				dsn = sqliteFile(t)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // a bound: it ends at once
			defer cancel()
			s, err := Open(ctx, SQLite, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.DB.SetMaxOpenConns(1)
			prev, next := benchToken(1), benchToken(2)
			if err := s.Save(ctx, "k", prev); err != nil {
				t.Fatal(err)
			}
			l, err := s.LockLease(ctx, "k", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Unlock()
			if err := s.SaveIfUnlock(ctx, l, "k", prev, next); err != nil {
				t.Fatalf("SaveIfUnlock: %v", err)
			}
			if st, err := s.Load(ctx, "k"); err != nil || st.AccessToken != next.AccessToken {
				t.Errorf("stored %v; want the new pair", err)
			}
		})
	}
}

// TestCloseReleasesPrepared: a Store made by New on a database the program keeps closes the
// statements it prepared there when it is closed, and the database works on.
func TestCloseReleasesPrepared(t *testing.T) {
	t.Parallel()
	opened := sqliteStore(t, sqliteFile(t))
	s := New(opened.DB, SQLite)
	ctx := t.Context()
	if err := s.Save(ctx, "k", benchToken(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.stmts.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Errorf("%d statements still prepared after Close", n)
	}
	if _, err := opened.Load(ctx, "k"); err != nil {
		t.Errorf("the database after the Store on it was closed: %v", err)
	}
}
