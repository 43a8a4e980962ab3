package redisstore

import (
	"encoding/json"
	"testing"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestRecordLimit: a token whose JSON is twitchoauth.MaxStoredTokenSize bytes is stored and read
// back; a larger one is refused by Save and SaveIf, and nothing is written.
func TestRecordLimit(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	s := New(newClient(t, srv.Addr))
	storetest.WantRecordLimit(t, t.Context(), s, func(st *twitchoauth.StoredToken) ([]byte, error) { return json.Marshal(st) })
}
