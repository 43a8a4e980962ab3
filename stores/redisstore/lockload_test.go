package redisstore

import (
	"testing"
	"time"
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
