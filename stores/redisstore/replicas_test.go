package redisstore

import (
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// Two replicas, each a UserTokens registry running Run over a Redis client of its own: what one
// does reaches the other over the store's channel at once, and after the watch was lost, within
// SyncEvery.

// TestRedisHearsRefreshAtOnce: 200 users; A refreshes each in turn and B's subscriber is handed
// the token within 100 ms at the 99th percentile; A removes 50, each dropped by B within 100 ms.
func TestRedisHearsRefreshAtOnce(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	storetest.HearsRefreshAtOnce(t, New(newClient(t, srv.Addr)), New(newClient(t, srv.Addr)), 200, 50, 100*time.Millisecond)
}

// TestRedisChangesSeenAfterWatchLost: Redis, with AOF, is killed (SIGKILL) and started again on
// the same port; B's client is kept from connecting again while A refreshes five users and
// removes one. Once let back, B has all of it within its SyncEvery, and hears later changes at
// once.
func TestRedisChangesSeenAfterWatchLost(t *testing.T) {
	t.Parallel()
	srv, port, dir := startOwnRedis(t, true)
	b, gate := gatedStore(t, srv.Addr)
	storetest.ChangesSeenAfterWatchLost(t, New(newClient(t, srv.Addr)), b, 5*time.Second, storetest.WatchLoss{
		Lose: func(t *testing.T) {
			gate.hold(t)
			srv.Stop()
			gate.waitDial(t, "the kill")
			if _, err := startRedisIn(t, port, dir, true); err != nil {
				t.Fatalf("restart redis-server on the same port and directory: %v", err)
			}
		},
		Back: func(*testing.T) { gate.release() },
	})
}
