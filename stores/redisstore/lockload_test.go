package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twitchoauth/twitchoauth"
)

// TestLockHasNoRead: a lock taken by Lock reads nothing with it; LockLease's read is checked by
// the store suite's LeaseReader.
func TestLockHasNoRead(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	s := &Store{Client: newClient(t, srv.Addr), Prefix: "lockload:"}
	l, err := s.lock(t.Context(), "k", time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	if _, ok, _ := s.LeaseRead(l); ok {
		t.Error("a lock taken by Lock gave a read")
	}
}

// TestSaveIfUnlock: over one server, SaveIfUnlock stores the token and deletes the lock in one
// script, plain or sealed (the sealed path compares the bytes read); over a client that may keep
// the token and the lock on different nodes (a Ring here, as a Cluster), no read goes with the
// lock, and SaveIfUnlock does nothing and says it cannot: the refresh loads the token under the
// lock, and saves and unlocks in two steps.
func TestSaveIfUnlock(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	key := make([]byte, twitchoauth.KeySize)
	for i := range key {
		key[i] = byte(i + 1)
	}
	k, err := twitchoauth.NewKeyring("k1", map[string][]byte{"k1": key})
	if err != nil {
		t.Fatal(err)
	}
	first := &twitchoauth.StoredToken{AccessToken: "acc-1", RefreshToken: "ref-1", UserID: "42"}
	second := &twitchoauth.StoredToken{AccessToken: "acc-2", RefreshToken: "ref-2", UserID: "42"}
	for _, tc := range []struct {
		name    string
		keyring *twitchoauth.Keyring
	}{{"plain", nil}, {"sealed", k}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			s := &Store{Client: newClient(t, srv.Addr), Prefix: "saveifunlock-" + tc.name + ":", Keyring: tc.keyring}
			if err := s.Save(ctx, "k", first); err != nil {
				t.Fatal(err)
			}
			l, err := s.LockLease(ctx, "k", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SaveIfUnlock(ctx, l, "k", first, second); err != nil {
				t.Fatalf("SaveIfUnlock: %v", err)
			}
			if n, err := s.Client.Exists(ctx, s.lockKey("k")).Result(); err != nil || n != 0 {
				t.Errorf("the lock key exists (%d, %v) after SaveIfUnlock; want it deleted with the save", n, err)
			}
			if st, err := s.Load(ctx, "k"); err != nil || st.AccessToken != second.AccessToken {
				t.Errorf("stored %v; want the token SaveIfUnlock saved", err)
			}
			if err := l.Unlock(); err != nil {
				t.Errorf("Unlock after SaveIfUnlock: %v", err)
			}
		})
	}
	t.Run("ring", func(t *testing.T) {
		ctx := t.Context()
		ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": srv.Addr}})
		t.Cleanup(func() { ring.Close() })
		s := &Store{Client: ring, Prefix: "saveifunlock-ring:"}
		if err := s.Save(ctx, "k", first); err != nil {
			t.Fatal(err)
		}
		l, err := s.LockLease(ctx, "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Unlock()
		// A Ring or a Cluster sends a pipeline's GET and SET to their nodes at once: a GET that
		// ran first would read the token from before the last holder's save.
		if _, ok, _ := s.LeaseRead(l); ok {
			t.Error("a lock taken over a Ring gave a read with it; want none, the token loaded under the lock")
		}
		if err := s.SaveIfUnlock(ctx, l, "k", first, second); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("SaveIfUnlock over a Ring = %v; want errors.ErrUnsupported", err)
		}
		if st, err := s.Load(ctx, "k"); err != nil || st.AccessToken != first.AccessToken {
			t.Errorf("stored %v; want the token before, untouched", err)
		}
	})
}

// TestLockWithFailedRead: the token's GET that goes with the lock fails (the key holds another
// type) while the lock's SET succeeds: the lock is taken and given, with no read, so the work
// under it loads the key and meets the error there, and unlocks; it is not left held, unknown
// to anyone, until its lease ends.
func TestLockWithFailedRead(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	s := &Store{Client: newClient(t, srv.Addr), Prefix: "failedread:"}
	ctx := t.Context()
	if err := s.Client.RPush(ctx, s.tokenKey("k"), "not a token").Err(); err != nil {
		t.Fatal(err)
	}
	l, err := s.LockLease(ctx, "k", time.Minute)
	if err != nil {
		t.Fatalf("LockLease: %v; want the lock, taken", err)
	}
	if _, ok, _ := s.LeaseRead(l); ok {
		t.Error("LeaseRead gave a read that failed")
	}
	if err := l.Unlock(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Client.Exists(ctx, s.lockKey("k")).Result(); err != nil || n != 0 {
		t.Errorf("the lock key exists (%d, %v) after Unlock", n, err)
	}
}
