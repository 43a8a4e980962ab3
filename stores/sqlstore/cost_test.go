package sqlstore

import (
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
