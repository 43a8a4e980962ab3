package redisstore

import (
	"testing"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestSealing runs the sealing suite on a redis-server with its append-only file on (every write
// in it before it is acknowledged): a tampered value refused, a wrong key refused with one summary
// error and nothing overwritten, SaveIf against a stale pair refused, and a key rotated under
// concurrent refreshes, after which no issued token is in the append-only file or, after SAVE, the
// RDB snapshot.
func TestSealing(t *testing.T) {
	t.Parallel()
	storetest.RunSealing(t, func(t *testing.T) storetest.SealedBackend {
		srv, _, dir := startOwnRedis(t, true)
		rdb := newClient(t, srv.Addr)
		return storetest.SealedBackend{
			Connect: func(t *testing.T, k *twitchoauth.Keyring) storetest.SealedStore {
				return &Store{Client: newClient(t, srv.Addr), Prefix: DefaultPrefix, Keyring: k}
			},
			Tamper: func(t *testing.T, key string) {
				rkey := DefaultPrefix + "token:" + key
				data, err := rdb.Get(t.Context(), rkey).Bytes()
				if err != nil {
					t.Fatal(err)
				}
				if err := rdb.Set(t.Context(), rkey, storetest.TamperJSON(t, data), 0).Err(); err != nil {
					t.Fatal(err)
				}
			},
			AtRest: func(t *testing.T) []string {
				// The append-only file as it is (every write since the start), and a snapshot.
				if err := rdb.Save(t.Context()).Err(); err != nil {
					t.Fatal(err)
				}
				return []string{dir}
			},
		}
	})
}
