package twitchoauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

var botScopes = []Scope{ScopeChatRead, ScopeChatEdit}

// bindEnv is one helper bound to a token file, with a generator that plays a successful login.
type bindEnv struct {
	c      *Client
	fake   *faketwitch.Server
	h      *UserAuthenticationStorageHelper
	path   string
	logins atomic.Int32
	logs   *bytes.Buffer
}

func newBindEnv(t *testing.T) *bindEnv {
	t.Helper()
	c, fake := newTestClient(t)
	e := &bindEnv{c: c, fake: fake, path: filepath.Join(t.TempDir(), "nested", "dir", "token.json"), logs: &bytes.Buffer{}}
	c.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.h = NewUserAuthenticationStorageHelper(c, botScopes)
	e.h.StoragePath = e.path
	e.h.AuthGenerator = func(ctx context.Context, c *Client, scopes []Scope) (*oauth2.Token, error) {
		e.logins.Add(1)
		access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, scopesToStrings(scopes), 0)
		return &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(4 * time.Hour)}, nil
	}
	return e
}

// write stores a file holding these two pyTwitchAPI keys.
func (e *bindEnv) write(t *testing.T, access, refresh string) []byte {
	t.Helper()
	data, _ := json.Marshal(map[string]string{"token": access, "refresh": refresh})
	e.writeRaw(t, data)
	return data
}

func (e *bindEnv) writeRaw(t *testing.T, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(e.path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// stored reads the token file back, checking its mode and pyTwitchAPI's two keys.
func (e *bindEnv) stored(t *testing.T) StoredToken {
	t.Helper()
	fi, err := os.Stat(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(e.path)
	var py map[string]any
	if err := json.Unmarshal(data, &py); err != nil {
		t.Fatal(err)
	}
	if _, ok := py["token"].(string); !ok {
		t.Errorf("file lacks pyTwitchAPI's \"token\": %s", data)
	}
	if _, ok := py["refresh"].(string); !ok {
		t.Errorf("file lacks pyTwitchAPI's \"refresh\": %s", data)
	}
	var st StoredToken
	json.Unmarshal(data, &st)
	return st
}

func (e *bindEnv) bind(t *testing.T) (*UserTokenSource, error) {
	t.Helper()
	return e.h.Bind(t.Context())
}

func (e *bindEnv) wantLogins(t *testing.T, n int32) {
	t.Helper()
	if got := e.logins.Load(); got != n {
		t.Errorf("AuthGenerator ran %d times, want %d", got, n)
	}
}

func TestBindUsesValidToken(t *testing.T) {
	for _, format := range []string{"pyTwitchAPI", "ours"} {
		t.Run(format, func(t *testing.T) {
			e := newBindEnv(t)
			access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
			var before []byte
			if format == "pyTwitchAPI" {
				before = e.write(t, access, refresh)
			} else {
				before, _ = json.Marshal(StoredToken{AccessToken: access, RefreshToken: refresh, Scopes: botScopes,
					UserID: faketwitch.UserID, Login: faketwitch.UserLogin, ClientID: e.c.ClientID})
				e.writeRaw(t, before)
			}
			src, err := e.bind(t)
			if err != nil {
				t.Fatal(err)
			}
			e.wantLogins(t, 0)
			tok, err := src.Token()
			if err != nil || tok.AccessToken != access || tok.RefreshToken != refresh {
				t.Errorf("Token() = %+v, %v", tok, err)
			}
			if !slices.Equal(TokenScopes(tok), botScopes) || time.Until(tok.Expiry) < 3*time.Hour {
				t.Errorf("token scopes %v, expiry in %v: want what validation said", TokenScopes(tok), time.Until(tok.Expiry))
			}
			after, _ := os.ReadFile(e.path)
			if format == "ours" && !bytes.Equal(after, before) {
				t.Errorf("file changed: %s", after)
			}
			// pyTwitchAPI's file gains what validation said, once; the pair stays.
			if st := e.stored(t); st.AccessToken != access || st.RefreshToken != refresh || st.UserID != faketwitch.UserID || st.ClientID != e.c.ClientID {
				t.Errorf("file holds %+v", st)
			}
			if _, err := e.bind(t); err != nil {
				t.Fatal(err)
			}
			if again, _ := os.ReadFile(e.path); !bytes.Equal(again, after) {
				t.Errorf("second start rewrote the file")
			}
			if n := e.fake.CountGrant("refresh_token"); n != 0 {
				t.Errorf("%d refreshes of a valid token", n)
			}
		})
	}
}

func TestBindRefreshesRejectedToken(t *testing.T) {
	e := newBindEnv(t)
	access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
	e.fake.ExpireAccessToken(access)
	e.write(t, access, refresh)
	src, err := e.bind(t)
	if err != nil {
		t.Fatal(err)
	}
	e.wantLogins(t, 0)
	if n := e.fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	st := e.stored(t)
	tok, _ := src.Token()
	if st.AccessToken == access || st.AccessToken != tok.AccessToken || st.RefreshToken != tok.RefreshToken {
		t.Errorf("file holds %q, source %q: want the refreshed pair in both", st.AccessToken, tok.AccessToken)
	}
	if _, err := e.c.ValidateToken(t.Context(), tok.AccessToken); err != nil {
		t.Errorf("refreshed token: %v", err)
	}
}

func TestBindLogsIn(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T, e *bindEnv)
		reason string // what the log line says
	}{
		{"no file", func(t *testing.T, e *bindEnv) {}, "does not exist"},
		{"unreadable JSON", func(t *testing.T, e *bindEnv) { e.writeRaw(t, []byte(`{"token": "abc", `)) }, "unreadable"},
		{"no token in file", func(t *testing.T, e *bindEnv) { e.writeRaw(t, []byte(`{"refresh":"r"}`)) }, "unreadable"},
		{"refresh token rejected", func(t *testing.T, e *bindEnv) {
			access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
			e.fake.ExpireAccessToken(access)
			e.fake.RevokeRefreshToken(refresh)
			e.write(t, access, refresh)
		}, "Invalid refresh token"},
		{"invalid without refresh token", func(t *testing.T, e *bindEnv) { e.write(t, "dead-token", "") }, "no refresh token"},
		{"missing scope", func(t *testing.T, e *bindEnv) {
			a, r := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
			e.write(t, a, r)
		}, "lacks scopes: chat:edit"},
		{"app token", func(t *testing.T, e *bindEnv) {
			a, r := e.fake.IssueToken(e.c.ClientID, "", nil, 0)
			e.write(t, a, r)
		}, "app token"},
		{"another client's token", func(t *testing.T, e *bindEnv) {
			e.fake.AddClient("other-client", "other-secret", faketwitch.RedirectURL)
			a, r := e.fake.IssueToken("other-client", faketwitch.UserID, scopesToStrings(botScopes), 0)
			e.write(t, a, r)
		}, "another client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBindEnv(t)
			tt.setup(t, e)
			src, err := e.bind(t)
			if err != nil {
				t.Fatal(err)
			}
			e.wantLogins(t, 1)
			st := e.stored(t)
			tok, _ := src.Token()
			if st.AccessToken != tok.AccessToken || st.UserID != faketwitch.UserID || st.Login != faketwitch.UserLogin ||
				st.ClientID != e.c.ClientID || !slices.Equal(st.Scopes, botScopes) || st.Expiry.IsZero() {
				t.Errorf("file holds %+v, source %q", st, tok.AccessToken)
			}
			if !strings.Contains(e.logs.String(), tt.reason) {
				t.Errorf("log does not say %q:\n%s", tt.reason, e.logs)
			}
			if strings.Contains(e.logs.String(), tok.AccessToken) || strings.Contains(e.logs.String(), tok.RefreshToken) {
				t.Errorf("log holds the token:\n%s", e.logs)
			}
		})
	}
}

// TestBindTransientFailure: an outage never starts a login and never touches the file.
func TestBindTransientFailure(t *testing.T) {
	tests := []struct {
		name    string
		expired bool // the access token is dead, so Bind gets to the refresh
		fault   func(f *faketwitch.Server)
		ctx     func(context.Context) (context.Context, context.CancelFunc)
	}{
		{"validate 500", false, func(f *faketwitch.Server) { f.Fail("validate", faketwitch.Fault{Status: 500}) }, nil},
		{"validate 429", false, func(f *faketwitch.Server) {
			f.Fail("validate", faketwitch.Fault{Status: 429, Body: `{"status":429,"message":"Too Many Requests"}`})
		}, nil},
		{"validate html 502", false, func(f *faketwitch.Server) {
			f.Fail("validate", faketwitch.Fault{Status: 502, Body: "<html>oops</html>"})
		}, nil},
		{"validate cut short", false, func(f *faketwitch.Server) {
			f.Fail("validate", faketwitch.Fault{Status: 200, Body: `{"client_id":`, Truncate: true})
		}, nil},
		{"refresh 503", true, func(f *faketwitch.Server) { f.Fail("token", faketwitch.Fault{Status: 503}) }, nil},
		{"network down", false, func(f *faketwitch.Server) { f.Close() }, nil},
		{"timeout", false, func(f *faketwitch.Server) { f.Fail("validate", faketwitch.Fault{Hang: true}) },
			func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 50*time.Millisecond)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBindEnv(t)
			access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
			if tt.expired {
				e.fake.ExpireAccessToken(access)
			}
			before := e.write(t, access, refresh)
			tt.fault(e.fake)
			ctx := t.Context()
			if tt.ctx != nil {
				var cancel context.CancelFunc
				ctx, cancel = tt.ctx(ctx)
				defer cancel()
			}
			src, err := e.h.Bind(ctx)
			if err == nil || src != nil {
				t.Fatalf("Bind = %v, %v; want an error", src, err)
			}
			e.wantLogins(t, 0)
			if after, _ := os.ReadFile(e.path); !bytes.Equal(after, before) {
				t.Errorf("file changed after a transient failure:\n%s\nwas\n%s", after, before)
			}
			if strings.Contains(err.Error(), access) || strings.Contains(err.Error(), refresh) {
				t.Errorf("error holds the token: %v", err)
			}
		})
	}
}

func TestBindLoginFailures(t *testing.T) {
	t.Run("generator error", func(t *testing.T) {
		e := newBindEnv(t)
		e.h.AuthGenerator = func(context.Context, *Client, []Scope) (*oauth2.Token, error) { return nil, ErrAccessDenied }
		if _, err := e.bind(t); !errors.Is(err, ErrAccessDenied) || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("err = %v, want ErrAccessDenied saying why a login was needed", err)
		}
		if _, err := os.Stat(e.path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a file was written: %v", err)
		}
	})
	t.Run("new token lacks a scope", func(t *testing.T) {
		e := newBindEnv(t)
		e.h.AuthGenerator = func(ctx context.Context, c *Client, _ []Scope) (*oauth2.Token, error) {
			access, refresh := e.fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
			return &oauth2.Token{AccessToken: access, RefreshToken: refresh}, nil
		}
		_, err := e.bind(t)
		var me *MissingScopeError
		if !errors.As(err, &me) || !slices.Equal(me.Missing, []Scope{ScopeChatEdit}) || !errors.Is(err, ErrMissingScope) {
			t.Errorf("err = %v, want a MissingScopeError naming chat:edit", err)
		}
	})
	t.Run("directory not writable", func(t *testing.T) {
		e := newBindEnv(t)
		blocker := filepath.Join(t.TempDir(), "file")
		os.WriteFile(blocker, nil, 0o600)
		e.h.StoragePath = filepath.Join(blocker, "token.json") // a path under a regular file
		if _, err := e.bind(t); err == nil {
			t.Error("Bind succeeded with an unusable path")
		}
	})
}

func TestFileStoreAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	s := &FileStore{Path: filepath.Join(dir, "token.json")}
	ctx := t.Context()
	old := &StoredToken{AccessToken: "old", RefreshToken: "old-r"}
	if err := s.Save(ctx, "", old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(s.Path)

	// A crash between the temporary file's write and the rename.
	renameFile = func(string, string) error { return errors.New("crash") }
	t.Cleanup(func() { renameFile = os.Rename })
	if err := s.Save(ctx, "", &StoredToken{AccessToken: "new", RefreshToken: "new-r"}); err == nil {
		t.Fatal("Save succeeded without its rename")
	}
	if after, _ := os.ReadFile(s.Path); !bytes.Equal(after, before) {
		t.Errorf("file changed: %s", after)
	}
	entries, _ := os.ReadDir(dir)
	for _, ent := range entries {
		if ent.Name() != "token.json" && !strings.HasSuffix(ent.Name(), ".lock") {
			t.Errorf("left behind: %s", ent.Name())
		}
	}
	renameFile = os.Rename
	if err := s.Save(ctx, "", &StoredToken{AccessToken: "new", RefreshToken: "new-r"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, "")
	if err != nil || got.AccessToken != "new" {
		t.Errorf("Load = %+v, %v", got, err)
	}
	if fi, _ := os.Stat(s.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

func TestFileStoreKeys(t *testing.T) {
	s := &FileStore{Path: filepath.Join("dir", "user_token.json")}
	for key, want := range map[string]string{"": "dir/user_token.json", "12345": "dir/user_token.12345.json"} {
		if got, err := s.file(key); err != nil || filepath.ToSlash(got) != want {
			t.Errorf("file(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, bad := range []string{"..", ".", "a/b", `a\b`, "a:b", "a\x00"} {
		if _, err := s.file(bad); err == nil {
			t.Errorf("file(%q) accepted", bad)
		}
	}
	if _, err := (&FileStore{Path: filepath.Join(t.TempDir(), "big.json")}).Load(t.Context(), ""); !errors.Is(err, ErrTokenNotFound) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(big, bytes.Repeat([]byte(" "), MaxStoredTokenSize+2), 0o600)
	if _, err := (&FileStore{Path: big}).Load(t.Context(), ""); err == nil || errors.Is(err, ErrTokenCorrupt) {
		t.Errorf("oversized file: err = %v, want a read error (not a corrupt token that would start a login)", err)
	}
}

// FuzzDecodeStoredToken feeds arbitrary token files to the decoder: it never panics, what it
// accepts holds an access token, and its errors never repeat the file's contents.
func FuzzDecodeStoredToken(f *testing.F) {
	f.Add([]byte(`{"token":"a","refresh":"r"}`))
	f.Add([]byte(`{"token":"a","refresh":"r","expiry":"2026-01-02T15:04:05Z","scopes":["chat:read"],"user_id":"1"}`))
	f.Add([]byte(`{"token":1}`))
	f.Add([]byte(`{"token":"a","expiry":"sekrit-value"}`))
	f.Add([]byte(`{"token":"sekrit-value","scopes":"sekrit-value"}`))
	f.Add([]byte(`{"token":"","refresh":"","sealed":"c2Vrcml0LXZhbHVl","key_id":"k1"}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := DecodeStoredToken(data)
		if err == nil && st.AccessToken == "" {
			t.Error("accepted a file without a token")
		}
		if err != nil && !errors.Is(err, ErrTokenCorrupt) && !errors.Is(err, ErrCannotUnseal) {
			t.Errorf("err = %v, want ErrTokenCorrupt (or ErrCannotUnseal: a sealed record)", err)
		}
		if err != nil && bytes.Contains(data, []byte("sekrit")) && strings.Contains(err.Error(), "sekrit") {
			t.Errorf("error repeats the data: %v", err)
		}
	})
}

// --- UserTokenSource ---

func expiredToken(access, refresh string) *oauth2.Token {
	return &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(-time.Second)}
}

func TestTokenSourceCached(t *testing.T) {
	c, fake := newTestClient(t)
	tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r", Expiry: time.Now().Add(time.Hour)}
	src := NewUserTokenSource(c, tok, nil)
	for range 10 {
		got, err := src.Token()
		if err != nil || got != tok {
			t.Fatalf("Token() = %v, %v", got, err)
		}
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests for a cached token", n)
	}
	// Within the margin before Expiry it refreshes.
	_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	src = NewUserTokenSource(c, &oauth2.Token{AccessToken: "a", RefreshToken: refresh, Expiry: time.Now().Add(expiryMargin / 2)}, nil)
	if got, err := src.Token(); err != nil || got.AccessToken == "a" {
		t.Errorf("near expiry: Token() = %v, %v; want a refreshed token", got, err)
	}
}

// TestTokenSourceOneRefresh: 1000 callers of an expired token share one refresh and one onRefresh,
// which runs before any of them sees the new token.
func TestTokenSourceOneRefresh(t *testing.T) {
	c, fake := newTestClient(t)
	_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	var calls atomic.Int32
	var persisted atomic.Pointer[oauth2.Token]
	src := NewUserTokenSource(c, expiredToken("old", refresh), func(tok *oauth2.Token) error {
		calls.Add(1)
		time.Sleep(10 * time.Millisecond) // a slow disk: callers must not see the token meanwhile
		persisted.Store(tok)
		return nil
	})
	const n = 1000
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		go func() {
			<-start
			tok, err := src.Token()
			if err == nil && (persisted.Load() == nil || tok.AccessToken != persisted.Load().AccessToken) {
				err = errors.New("saw a token before onRefresh persisted it")
			}
			errs <- err
		}()
	}
	close(start)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.CountGrant("refresh_token"); got != 1 {
		t.Errorf("%d refresh requests, want 1", got)
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("onRefresh called %d times, want 1", got)
	}
}

func TestTokenSourceRefreshFailures(t *testing.T) {
	c, fake := newTestClient(t)
	t.Run("rejected", func(t *testing.T) {
		src := NewUserTokenSource(c, expiredToken("old", "bogus"), nil)
		if _, err := src.Token(); !errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("err = %v, want ErrInvalidRefreshToken", err)
		}
		if _, err := NewUserTokenSource(c, expiredToken("old", ""), nil).Token(); !errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("no refresh token: err = %v, want ErrInvalidRefreshToken", err)
		}
	})
	t.Run("transient then recovers", func(t *testing.T) {
		_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
		src := NewUserTokenSource(c, expiredToken("old", refresh), nil)
		fake.Fail("token", faketwitch.Fault{Status: 503, Count: 1})
		_, err := src.Token()
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != 503 || errors.Is(err, ErrInvalidRefreshToken) {
			t.Fatalf("err = %v, want the 503", err)
		}
		endBackoff(&src.tokenCache)
		if tok, err := src.Token(); err != nil || tok.AccessToken == "old" {
			t.Errorf("after the outage: Token() = %v, %v", tok, err)
		}
	})
	t.Run("persist failure keeps the new token", func(t *testing.T) {
		_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
		src := NewUserTokenSource(c, expiredToken("old", refresh), func(*oauth2.Token) error { return errors.New("disk full") })
		tok, err := src.Token()
		if err == nil || !strings.Contains(err.Error(), "disk full") || tok == nil {
			t.Fatalf("Token() = %v, %v; want the token and the error", tok, err)
		}
		if again, err := src.Token(); err != nil || again != tok {
			t.Errorf("next Token() = %v, %v; want the new token from the cache", again, err)
		}
	})
}

// TestTokenSourceSharedFailure: callers that wait while a refresh fails get its error instead of
// each sending a refresh of their own, but not an error that only the refreshing caller's ctx caused.
func TestTokenSourceSharedFailure(t *testing.T) {
	c, fake := newTestClient(t)
	t.Run("outage", func(t *testing.T) {
		_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
		src := NewUserTokenSource(c, expiredToken("old", refresh), nil)
		fake.Fail("token", faketwitch.Fault{Status: 503, Delay: 300 * time.Millisecond, Count: 1})
		before := fake.CountRequests("token")
		const n = 20
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := src.Token()
				errs <- err
			}()
		}
		for range n {
			var ae *APIError
			if err := <-errs; !errors.As(err, &ae) || ae.StatusCode != 503 {
				t.Errorf("err = %v, want the 503 of the one attempt", err)
			}
		}
		if got := fake.CountRequests("token") - before; got != 1 {
			t.Errorf("%d refresh requests during one outage, want 1", got)
		}
	})
	t.Run("refreshing caller's ctx ended", func(t *testing.T) {
		_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
		src := NewUserTokenSource(c, expiredToken("old", refresh), nil)
		fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 10 * time.Second, Count: 1})
		before := fake.CountRequests("token")
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		first := make(chan error, 1)
		go func() {
			_, err := src.TokenContext(ctx)
			first <- err
		}()
		for deadline := time.Now().Add(5 * time.Second); fake.CountRequests("token") == before; {
			if time.Now().After(deadline) {
				t.Fatal("the first refresh never reached the server")
			}
			time.Sleep(time.Millisecond)
		}
		// This caller waits for the lock while the first one's ctx ends.
		if tok, err := src.Token(); err != nil || tok.AccessToken == "old" {
			t.Errorf("waiting caller: Token() = %v, %v; want a refreshed token", tok, err)
		}
		if err := <-first; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("first caller: err = %v, want its ctx's error", err)
		}
	})
}

// TestHTTPClient: the Helix client sends the token and Client-Id, refreshes once on a 401 and sends
// the request again, body included, and never loops.
func TestHTTPClient(t *testing.T) {
	c, fake := newTestClient(t)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	var hits atomic.Int32
	var lastBody atomic.Value
	alwaysReject := atomic.Bool{}
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		body := new(bytes.Buffer)
		body.ReadFrom(r.Body)
		lastBody.Store(body.String())
		_, err := c.ValidateToken(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if err != nil || alwaysReject.Load() || r.Header.Get("Client-Id") != c.ClientID {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, `{"data":[]}`)
	})
	// The source believes its token is good for an hour, but Twitch killed it.
	src := NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}, nil)
	fake.ExpireAccessToken(access)
	hc := src.HTTPClient()

	resp, err := hc.Post(helix+"/helix/chat/messages", "application/json", strings.NewReader(`{"message":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || hits.Load() != 2 || lastBody.Load() != `{"message":"hi"}` {
		t.Errorf("status %d after %d hits, body %q: want 200 after one retry with the body", resp.StatusCode, hits.Load(), lastBody.Load())
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}

	hits.Store(0)
	alwaysReject.Store(true)
	resp, err = hc.Get(helix + "/helix/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Twitch says the token is valid, so Helix's 401 is passed on: no refresh, no second try.
	if resp.StatusCode != 401 || hits.Load() != 1 || fake.CountGrant("refresh_token") != 1 {
		t.Errorf("always 401: status %d after %d hits and %d refreshes, want 401 after 1 hit and no new refresh",
			resp.StatusCode, hits.Load(), fake.CountGrant("refresh_token"))
	}

	hits.Store(0)
	req, _ := http.NewRequest(http.MethodPost, helix+"/helix/x", struct{ *strings.Reader }{strings.NewReader("once")})
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("a body that cannot be replayed was sent %d times", hits.Load())
	}
}

func TestBindSourceRefreshesThroughFile(t *testing.T) {
	e := newBindEnv(t)
	access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
	e.write(t, access, refresh)
	src, err := e.bind(t)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.ForceRefresh(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.stored(t); st.AccessToken != tok.AccessToken || st.RefreshToken != tok.RefreshToken || st.UserID != faketwitch.UserID {
		t.Errorf("file holds %+v after a refresh to %q", st, tok.AccessToken)
	}
	// A second source on the same file (another process) adopts the stored token without refreshing.
	other := NewStoreTokenSource(e.c, &FileStore{Path: e.path}, "", &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute)})
	before := e.fake.CountGrant("refresh_token")
	got, err := other.Token()
	if err != nil || got.AccessToken != tok.AccessToken || e.fake.CountGrant("refresh_token") != before {
		t.Errorf("other source: Token() = %v, %v after %d refreshes; want the stored token, no refresh", got, err, e.fake.CountGrant("refresh_token")-before)
	}
}

func BenchmarkTokenCached(b *testing.B) {
	src := NewUserTokenSource(&Client{}, &oauth2.Token{AccessToken: "a", Expiry: time.Now().Add(time.Hour)}, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Token(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTokenCachedParallel(b *testing.B) {
	src := NewUserTokenSource(&Client{}, &oauth2.Token{AccessToken: "a", Expiry: time.Now().Add(time.Hour)}, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := src.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUserTokensSource looks up a user's source among 10,000 registered users and takes its
// fresh token, as a bot does before each Helix call, asking for the same user each time as
// BenchmarkTokenCached does; BenchmarkUserTokensTokenRotating asks for each user in turn.
func BenchmarkUserTokensSource(b *testing.B) {
	store := newMemStore()
	users := ids(10000)
	for _, id := range users {
		store.Save(b.Context(), id, &StoredToken{AccessToken: "a" + id, RefreshToken: "r", Expiry: time.Now().Add(time.Hour), UserID: id})
	}
	u := NewUserTokens(&Client{}, store)
	if err := u.Sync(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		src, err := u.Source(users[0])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := src.Token(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHTTPClientRedirects(t *testing.T) {
	c, _ := newTestClient(t)
	src := NewUserTokenSource(c, &oauth2.Token{AccessToken: "tok", Expiry: time.Now().Add(time.Hour)}, nil)
	var leaked atomic.Bool
	other := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(r.Header.Get("Authorization") != "")
	})
	helix := newHelixServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other+"/elsewhere", http.StatusFound)
	})
	resp, err := src.HTTPClient().Get(helix + "/helix/users")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || leaked.Load() {
		t.Errorf("redirect to another host: status %d, token sent there: %v", resp.StatusCode, leaked.Load())
	}
}

// TestTokenSourceWaitEndsWithCtx: a caller waiting for another caller's slow refresh gives up when
// its own ctx ends, and the refresh goes on for the first.
func TestTokenSourceWaitEndsWithCtx(t *testing.T) {
	c, fake := newTestClient(t)
	_, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 0)
	src := NewUserTokenSource(c, expiredToken("old", refresh), nil)
	fake.Fail("token", faketwitch.Fault{Delay: 300 * time.Millisecond, Pass: true, Count: 1})
	first := make(chan error, 1)
	go func() { _, err := src.Token(); first <- err }()
	for fake.CountGrant("refresh_token") == 0 {
		time.Sleep(time.Millisecond) // until the first refresh is in flight
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := src.TokenContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting caller: err = %v, want its ctx's deadline", err)
	}
	if err := <-first; err != nil {
		t.Errorf("first caller: %v", err)
	}
	if tok, err := src.Token(); err != nil || tok.AccessToken == "old" || fake.CountGrant("refresh_token") != 1 {
		t.Errorf("after: %v, %v, %d refreshes", tok, err, fake.CountGrant("refresh_token"))
	}
}

// TestFileStoreLockRefusesSymlink: a symbolic link planted where a lock file goes (the lease's
// ".lock", or the writers' lock) makes the lock fail with a clear error, and the file it points to
// is neither created, nor changed, nor left locked.
func TestFileStoreLockRefusesSymlink(t *testing.T) {
	lockLease := func(ctx context.Context, s *FileStore) error {
		unlock, err := s.Lock(ctx, "", time.Minute)
		if err == nil {
			unlock()
		}
		return err
	}
	save := func(ctx context.Context, s *FileStore) error {
		return s.Save(ctx, "", &StoredToken{AccessToken: "acc"})
	}
	for _, tc := range []struct {
		name   string
		lock   string // the lock file's name
		take   func(ctx context.Context, s *FileStore) error
		exists bool // the link's target exists
	}{
		{"Lock/target exists", "token.json.lock", lockLease, true},
		{"Lock/target missing", "token.json.lock", lockLease, false},
		{"Save/target exists", ".token.json.write.lock", save, true},
		{"Save/target missing", ".token.json.write.lock", save, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(t.TempDir(), "precious")
			content := []byte("precious data\n")
			if tc.exists {
				if err := os.WriteFile(target, content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(target, filepath.Join(dir, tc.lock)); err != nil {
				t.Skipf("cannot make a symbolic link here: %v", err)
			}
			s := &FileStore{Path: filepath.Join(dir, "token.json")}
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := tc.take(ctx, s)
			if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "symbolic link") {
				t.Fatalf("err = %v, want an error naming the symbolic link", err)
			}
			data, rerr := os.ReadFile(target)
			switch {
			case !tc.exists && !errors.Is(rerr, fs.ErrNotExist):
				t.Errorf("the link's target was created (%v)", rerr)
			case tc.exists && !bytes.Equal(data, content):
				t.Errorf("the link's target changed: %q, %v", data, rerr)
			case tc.exists:
				f, err := os.OpenFile(target, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if ok, err := tryLockFile(f); !ok || err != nil {
					t.Errorf("the link's target is left locked (%v)", err)
				}
			}
			if _, err := os.Stat(s.Path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a token file was written without its lock (%v)", err)
			}
		})
	}
}

// TestBindTightensTokenFileMode: Bind makes a token file that others can read private at once,
// even when it has nothing to write (the stored token is valid and complete).
func TestBindTightensTokenFileMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no such mode bits")
	}
	e := newBindEnv(t)
	access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
	e.write(t, access, refresh)
	if _, err := e.bind(t); err != nil { // records what validation says, so the next Bind writes nothing
		t.Fatal(err)
	}
	if err := os.Chmod(e.path, 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(e.path)
	if _, err := e.bind(t); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(e.path); !bytes.Equal(after, before) {
		t.Fatalf("Bind wrote the file; the test needs one it only reads:\n%s", after)
	}
	e.stored(t) // checks the mode
	e.wantLogins(t, 0)
}

// TestBindValidation: BindValidation says whose the bound token is without another request, for
// a stored token, a refreshed one and a new login.
func TestBindValidation(t *testing.T) {
	for _, tc := range []string{"stored", "refreshed", "login"} {
		t.Run(tc, func(t *testing.T) {
			e := newBindEnv(t)
			if tc != "login" {
				access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
				if tc == "refreshed" {
					e.fake.ExpireAccessToken(access)
				}
				e.write(t, access, refresh)
			}
			e.fake.ResetRequests()
			src, v, err := e.h.BindValidation(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := src.Token()
			if v.UserID != faketwitch.UserID || v.Login != faketwitch.UserLogin || v.ClientID != e.c.ClientID || tok == nil {
				t.Errorf("validation %+v", v)
			}
			want := map[string]int{"stored": 1, "refreshed": 2, "login": 1}[tc]
			if n := e.fake.CountRequests("validate"); n != want {
				t.Errorf("%d validations, want %d: the caller needs none of its own", n, want)
			}
		})
	}
}

// TestBindDefaultLoginSettings: the default login takes the helper's ForceVerify and OpenBrowser,
// without an AuthGenerator of the caller's.
func TestBindDefaultLoginSettings(t *testing.T) {
	e := newBindEnv(t)
	e.h.AuthGenerator = nil
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.h.Port = l.Addr().(*net.TCPAddr).Port // free a moment ago: not the default, which others may use
	l.Close()
	for _, force := range []bool{true, false} {
		e.h.ForceVerify = force
		opened := make(chan string, 1)
		e.h.OpenBrowser = func(u string) error {
			opened <- u
			return errors.New("no browser here")
		}
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := e.h.Bind(ctx)
			errc <- err
		}()
		var u string
		select {
		case u = <-opened:
		case <-time.After(10 * time.Second):
			t.Fatal("the helper's OpenBrowser was not used")
		}
		cancel()
		<-errc
		if got := strings.Contains(u, "force_verify=true"); got != force || !strings.Contains(u, fmt.Sprintf("localhost%%3A%d", e.h.Port)) {
			t.Errorf("ForceVerify %v, port %d: login URL %q", force, e.h.Port, u)
		}
	}
}
