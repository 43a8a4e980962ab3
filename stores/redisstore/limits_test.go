package redisstore

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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

// TestLongKeyErrors: the errors of every operation on a key of 1 MiB quote a short prefix of its
// Redis key (and of its lock's) at most, whatever makes them fail (no value, an unreadable value,
// a changed value, a canceled context, a closed client, a lost lease).
func TestLongKeyErrors(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr)
	s := New(rdb)
	ctx := t.Context()
	key := storetest.LongKey
	_, err := s.Load(ctx, key)
	storetest.WantShortError(t, "Load of a missing key", err)
	prev, next := &twitchoauth.StoredToken{AccessToken: "a"}, &twitchoauth.StoredToken{AccessToken: "b"}
	storetest.WantShortError(t, "SaveIf of a missing key", s.SaveIf(ctx, key, prev, next))
	if err := s.Save(ctx, key, &twitchoauth.StoredToken{AccessToken: "c"}); err != nil {
		t.Fatalf("Save of a key of %d bytes: %.300v", len(key), err)
	}
	storetest.WantShortError(t, "SaveIf of a changed token", s.SaveIf(ctx, key, prev, next))

	for name, value := range map[string]string{
		"unreadable": "sekrit-garbage",
		"too large":  `{"token":"sekrit","login":"` + strings.Repeat("x", twitchoauth.MaxStoredTokenSize) + `"}`,
	} {
		bad := name + key
		if err := rdb.Set(ctx, s.tokenKey(bad), value, 0).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(ctx, bad)
		storetest.WantShortError(t, "Load of a value "+name, err)
		storetest.WantShortError(t, "SaveIf over a value "+name, s.SaveIf(ctx, bad, prev, next))
	}

	l := storetest.WantShortKeyErrors(t, ctx, s, key, prev, next)
	if err := rdb.Del(ctx, s.lockKey(key)).Err(); err != nil {
		t.Fatal(err)
	}
	storetest.WantShortError(t, "Renew of a lost lease", l.Renew(ctx))

	closing := New(redis.NewClient(&redis.Options{Addr: srv.Addr}))
	l, err = closing.LockLease(ctx, key, time.Minute)
	if err != nil {
		t.Fatalf("LockLease of a key of %d bytes: %.300v", len(key), err)
	}
	closing.Client.Close()
	storetest.WantShortError(t, "Unlock on a closed client", l.Unlock())
	storetest.WantShortError(t, "Renew on a closed client", l.Renew(ctx))
}
