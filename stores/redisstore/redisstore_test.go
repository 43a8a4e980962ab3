package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/redistest"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// redisServer is a redis-server process of one test (see redistest), on a loopback port, without
// persistence unless the test asks for it, killed when the test ends.
type redisServer struct{ *redistest.Server }

// startRedis starts a redis-server for the test on a free loopback port, without persistence,
// and stops it when the test ends (see startOwnRedis).
func startRedis(t testing.TB) *redisServer {
	t.Helper()
	srv, _, _ := startOwnRedis(t, false)
	return srv
}

// freePort returns a loopback port that nothing listened on a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newClient returns a client of its own (a replica's connection pool), closed when the test ends.
func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestSuite(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	twitchoauthtest.TestTokenStore(t, func(t *testing.T) func(t *testing.T) twitchoauth.TokenStore {
		prefix := "test:" + t.Name() + ":" // each subtest sees only its own data
		return func(t *testing.T) twitchoauth.TokenStore {
			return &Store{Client: newClient(t, srv.Addr), Prefix: prefix}
		}
	})
}

func TestKeys(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr)
	ctx := t.Context()
	store := New(rdb)
	tok := &twitchoauth.StoredToken{AccessToken: "acc", RefreshToken: "ref", UserID: "42",
		Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead}}
	if err := store.Save(ctx, "42", tok); err != nil {
		t.Fatal(err)
	}
	// The value is the token file's JSON, with no expiry.
	raw, err := rdb.Get(ctx, "twitchoauth:token:42").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := json.Unmarshal(raw, &file); err != nil || file["token"] != "acc" || file["refresh"] != "ref" || file["user_id"] != "42" {
		t.Errorf("stored value %s: %v", raw, err)
	}
	if ttl := rdb.TTL(ctx, "twitchoauth:token:42").Val(); ttl != -1 {
		t.Errorf("token key TTL = %v, want none", ttl)
	}

	unlock, err := store.Lock(ctx, "42", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	owner := rdb.Get(ctx, "twitchoauth:lock:42").Val()
	if len(owner) != 32 {
		t.Errorf("lock value %q, want 128 bits in hex", owner)
	}
	if ttl := rdb.PTTL(ctx, "twitchoauth:lock:42").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("lock TTL = %v, want at most a minute", ttl)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, "twitchoauth:lock:42").Val(); n != 0 {
		t.Error("lock key left after unlock")
	}
	if err := unlock(); err != nil {
		t.Errorf("second unlock: %v", err)
	}
}

// TestFileFormat: a token file copied into Redis as it is loads, so moving a bot's login from
// FileStore to Redis is one SET.
func TestFileFormat(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr)
	ctx := t.Context()
	fs := &twitchoauth.FileStore{Path: filepath.Join(t.TempDir(), "user_token.json")}
	want := &twitchoauth.StoredToken{AccessToken: "acc", RefreshToken: "ref", UserID: "42", Login: "bot", ClientID: "cid",
		Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead}}
	if err := fs.Save(ctx, "", want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(fs.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "twitchoauth:token:42", data, 0).Err(); err != nil {
		t.Fatal(err)
	}
	got, err := New(rdb).Load(ctx, "42")
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "acc" || got.RefreshToken != "ref" || !got.Expiry.Equal(want.Expiry) || got.Login != "bot" ||
		fmt.Sprint(got.Scopes) != fmt.Sprint(want.Scopes) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
}

func TestCorrupt(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr)
	store := New(rdb)
	for _, tc := range []struct{ name, value string }{
		{"garbage", "sekrit-garbage"},
		{"truncated", `{"token":"sekrit","refresh":"sekrit`},
		{"no access token", `{"refresh":"sekrit"}`},
		{"null", `null`},
		{"array", `["sekrit"]`},
		{"bad expiry", `{"token":"sekrit","expiry":"sekrit-time"}`},
		{"bad field type", `{"token":"sekrit","scopes":"sekrit"}`},
		{"too large", `{"token":"sekrit","login":"` + strings.Repeat("x", twitchoauth.MaxStoredTokenSize) + `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.Set(t.Context(), "twitchoauth:token:bad", tc.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := store.Load(t.Context(), "bad")
			if !errors.Is(err, twitchoauth.ErrTokenCorrupt) {
				t.Fatalf("Load: err = %v, want ErrTokenCorrupt", err)
			}
			if strings.Contains(err.Error(), "sekrit") {
				t.Errorf("error quotes the stored value: %v", err)
			}
		})
	}
}

func TestSaveNil(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	if err := New(newClient(t, srv.Addr)).Save(t.Context(), "k", nil); err == nil {
		t.Error("Save(nil) succeeded")
	}
}

func TestUnlockAfterLeaseDoesNotFreeOthersLock(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	a, b, c := New(newClient(t, srv.Addr)), New(newClient(t, srv.Addr)), New(newClient(t, srv.Addr))
	ctx := t.Context()
	unlockA, err := a.Lock(ctx, "k", 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	unlockB, err := b.Lock(waitCtx, "k", time.Minute)
	if err != nil {
		t.Fatalf("Lock after A's lease: %v", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("B took the lock after %v, before A's lease ended", waited)
	}
	if err := unlockA(); err != nil {
		t.Errorf("A's late unlock: %v, want nil", err)
	}
	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := c.Lock(short, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("C's Lock after A's late unlock: err = %v, want it to wait (B holds the lock)", err)
	}
	if err := unlockB(); err != nil {
		t.Fatal(err)
	}
	unlockC, err := c.Lock(waitCtx, "k", time.Minute)
	if err != nil {
		t.Fatalf("C's Lock after B's unlock: %v", err)
	}
	if err := unlockC(); err != nil {
		t.Error(err)
	}
}

// TestLockCanceled: a Lock waiting on a held lock returns when its ctx is canceled, and an unlock
// works after the holder's ctx ended.
func TestLockCanceled(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	a, b := New(newClient(t, srv.Addr)), New(newClient(t, srv.Addr))
	holderCtx, endHolder := context.WithCancel(t.Context())
	unlock, err := a.Lock(holderCtx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithCancel(t.Context())
	got := make(chan error, 1)
	go func() {
		_, err := b.Lock(waitCtx, "k", time.Minute)
		got <- err
	}()
	time.Sleep(30 * time.Millisecond) // let it poll a few times; it returns at cancel either way
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Lock canceled while waiting: err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock kept waiting after its ctx was canceled")
	}

	endHolder()
	if err := unlock(); err != nil {
		t.Fatalf("unlock after the holder's ctx ended: %v", err)
	}
	short, cancel2 := context.WithTimeout(t.Context(), time.Second)
	defer cancel2()
	unlockB, err := b.Lock(short, "k", time.Minute)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	unlockB()
}

// promptly is how long an operation on an unreachable Redis may take before the test calls it a
// hang: the client's own retries of a refused connection take well under a second.
const promptly = 5 * time.Second

// failingGenerator is an AuthGenerator that must never run: a store that cannot be reached is no
// reason to log the user in.
func failingGenerator(t *testing.T) func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
	return func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
		t.Error("AuthGenerator called although the store could not be reached")
		return nil, errors.New("no login in this test")
	}
}

// checkDown checks that every operation of store fails promptly with a clear error, and that Bind
// through it neither succeeds nor logs the user in.
func checkDown(t *testing.T, store *Store) {
	t.Helper()
	ctx := t.Context()
	why := []string{"connection refused"}
	storetest.WantDown(t, ctx, store, "redisstore: ", why, promptly)
	c, fake := storetest.Twitch(t)
	h := twitchoauth.NewUserAuthenticationStorageHelper(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	h.Store, h.StoreKey = store, "bot"
	h.AuthGenerator = failingGenerator(t)
	storetest.WantFailsPromptly(t, "Bind", func() error { _, err := h.Bind(ctx); return err }, "redisstore: ", why, promptly)
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("Bind sent %d requests to Twitch with the store down", n)
	}
}

func TestRedisDown(t *testing.T) {
	t.Parallel()
	t.Run("NothingListens", func(t *testing.T) {
		t.Parallel()
		checkDown(t, New(newClient(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))))))
	})
	t.Run("ServerStopped", func(t *testing.T) {
		t.Parallel()
		srv := startRedis(t)
		c, fake := storetest.Twitch(t)
		store := New(newClient(t, srv.Addr))
		access, refresh := fake.IssueToken(faketwitch.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
		st := &twitchoauth.StoredToken{AccessToken: access, RefreshToken: refresh}
		if err := store.Save(t.Context(), "bot", st); err != nil {
			t.Fatal(err)
		}
		// The store works while the server runs: Bind adopts the stored token without a login.
		h := twitchoauth.NewUserAuthenticationStorageHelper(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
		h.Store, h.StoreKey = store, "bot"
		h.AuthGenerator = failingGenerator(t)
		if _, err := h.Bind(t.Context()); err != nil {
			t.Fatal(err)
		}
		srv.Stop()
		checkDown(t, store)
	})
}

// TestSaveIfStoredValues: the script that compares and replaces the pair reads whatever the key
// holds: a token without a refresh token matches a prev without one, and a value that is no token
// is never replaced.
func TestSaveIfStoredValues(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	rdb := newClient(t, srv.Addr)
	store := New(rdb)
	next := &twitchoauth.StoredToken{AccessToken: "next", RefreshToken: "next-r"}
	for _, tc := range []struct {
		name, value string
		prev        *twitchoauth.StoredToken
		replaced    bool
	}{
		{"same pair", `{"token":"a","refresh":"r","user_id":"1"}`, &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r"}, true},
		{"no refresh key", `{"token":"a"}`, &twitchoauth.StoredToken{AccessToken: "a"}, true},
		{"null refresh", `{"token":"a","refresh":null}`, &twitchoauth.StoredToken{AccessToken: "a"}, true},
		{"refresh expected", `{"token":"a"}`, &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r"}, false},
		{"other access", `{"token":"b","refresh":"r"}`, &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r"}, false},
		{"garbage", "sekrit-garbage", &twitchoauth.StoredToken{AccessToken: "a"}, false},
		{"array", `["a"]`, &twitchoauth.StoredToken{AccessToken: "a"}, false},
		{"number token", `{"token":1}`, &twitchoauth.StoredToken{AccessToken: "1"}, false},
		{"null", `null`, &twitchoauth.StoredToken{AccessToken: "a"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			key := "saveif-" + strings.ReplaceAll(tc.name, " ", "-")
			if err := rdb.Set(ctx, "twitchoauth:token:"+key, tc.value, 0).Err(); err != nil {
				t.Fatal(err)
			}
			err := store.SaveIf(ctx, key, tc.prev, next)
			got := rdb.Get(ctx, "twitchoauth:token:"+key).Val()
			if tc.replaced {
				if err != nil || !strings.Contains(got, `"next"`) {
					t.Errorf("SaveIf = %v, key holds %s; want it replaced", err, got)
				}
				return
			}
			if !errors.Is(err, twitchoauth.ErrTokenChanged) || got != tc.value {
				t.Errorf("SaveIf = %v, key holds %s; want ErrTokenChanged and the value left alone", err, got)
			}
			if err != nil && strings.Contains(err.Error(), "sekrit") {
				t.Errorf("error quotes the stored value: %v", err)
			}
		})
	}
	if err := store.SaveIf(t.Context(), "missing", &twitchoauth.StoredToken{AccessToken: "a"}, next); !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("SaveIf over a missing key: %v, want ErrTokenChanged", err)
	}
	if n := rdb.Exists(t.Context(), "twitchoauth:token:missing").Val(); n != 0 {
		t.Error("SaveIf over a missing key created it")
	}
}
