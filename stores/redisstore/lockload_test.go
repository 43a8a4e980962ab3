package redisstore

import (
	"errors"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

// TestLockLeaseLoads: the pipeline that takes a lease's lock also reads the token, which the
// lease gives once, as Load would have (ErrTokenNotFound for none); a lock taken by Lock has no
// such read.
func TestLockLeaseLoads(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	s := &Store{Client: newClient(t, srv.Addr), Prefix: "lockload:"}
	ctx := t.Context()
	want := &twitchoauth.StoredToken{AccessToken: "acc", RefreshToken: "ref", UserID: "42"}
	if err := s.Save(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"k", "none"} {
		lease, err := s.LockLease(ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		ll, ok := lease.(twitchoauth.LoadedLease)
		if !ok {
			t.Fatal("the lease is not a LoadedLease")
		}
		st, ok, err := ll.Loaded()
		switch {
		case key == "k" && (!ok || err != nil || st.AccessToken != "acc" || st.RefreshToken != "ref"):
			t.Errorf("k: Loaded() = %v, %v, %v; want the stored token", st, ok, err)
		case key == "none" && (!ok || !errors.Is(err, twitchoauth.ErrTokenNotFound)):
			t.Errorf("none: Loaded() = %v, %v, %v; want ErrTokenNotFound", st, ok, err)
		}
		if _, ok, _ := ll.Loaded(); ok {
			t.Errorf("%s: Loaded gave its read twice", key)
		}
		if err := lease.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.lock(ctx, "k", time.Minute, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.unlock()
	if _, ok, _ := l.Loaded(); ok {
		t.Error("a lock taken by Lock gave a read")
	}
}
