package twitchoauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"golang.org/x/oauth2"
)

// This file tests that a refreshed pair is never lost and a public client's refresh token never
// sent twice, whatever fails: the store after Twitch answered, the answer itself, or the holder.

// flakyStore is a FileStore whose saves of a refreshed pair (a token without a spending mark,
// saved in place of a marked one) fail while failing is above zero, as a store that goes away
// after the refresh was sent would.
type flakyStore struct {
	*FileStore
	failing atomic.Int32
	failed  atomic.Int32
}

func (f *flakyStore) SaveIf(ctx context.Context, key string, prev, next *StoredToken) error {
	if prev.Spending != nil && next.Spending == nil && next.RefreshToken != prev.RefreshToken && f.failing.Load() > 0 {
		f.failing.Add(-1)
		f.failed.Add(1)
		return errors.New("store unreachable")
	}
	return f.FileStore.SaveIf(ctx, key, prev, next)
}

// seedStored stores, under key of store, a token of c's app for the fake's user that Twitch has
// expired, and returns it.
func seedStored(t *testing.T, store TokenStore, fake *faketwitch.Server, c *Client, key string) *StoredToken {
	t.Helper()
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
	fake.ExpireAccessToken(access)
	st := &StoredToken{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(-time.Minute),
		UserID: faketwitch.UserID, ClientID: c.ClientID, RefreshIssuedAt: time.Now()}
	if err := store.Save(t.Context(), key, st); err != nil {
		t.Fatal(err)
	}
	return st
}

// replica returns a source of key in store with a short lock ttl, and a short mark bound, so that
// it waits for another holder's mark for a second at most.
func replica(c *Client, store TokenStore, key string) *UserTokenSource {
	s := NewStoreTokenSource(c, store, key, nil)
	s.state().lockTTL = 2 * time.Second
	s.state().markBound = time.Second
	return s
}

// wantNoReuse checks that Twitch saw refreshes refresh requests and no refresh token twice.
func wantNoReuse(t *testing.T, fake *faketwitch.Server, refreshes int) {
	t.Helper()
	if n := fake.ReusedRefreshTokens(); n != 0 {
		t.Errorf("%d spent refresh tokens were sent again", n)
	}
	if n := fake.CountGrant("refresh_token"); n != refreshes {
		t.Errorf("%d refresh requests reached Twitch, want %d", n, refreshes)
	}
}

// TestRefreshedPairKeptWhenSaveFails: the store fails the save after Twitch answered a public
// client's refresh. The source keeps the new pair and uses it, another replica does not send the
// spent refresh token (it finds the mark), and the pair is stored when the store takes it: at the
// next Token once its backoff passed, or through FlushPending.
func TestRefreshedPairKeptWhenSaveFails(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
	old := seedStored(t, store, fake, c, "u")
	store.failing.Store(1)

	a := replica(c, store, "u")
	tok, err := a.Token()
	if err != nil || tok.AccessToken == old.AccessToken {
		t.Fatalf("Token() = %v, %v; want the refreshed token, kept though the store failed", tok, err)
	}
	if store.failed.Load() != 1 || !a.Pending() {
		t.Fatalf("failed saves %d, pending %v; want the save to have failed once and the pair pending", store.failed.Load(), a.Pending())
	}

	// Another replica (or this one restarted) must not spend the old refresh token again.
	b := replica(c, store.FileStore, "u")
	_, err = b.Token()
	if !errors.Is(err, ErrRefreshInDoubt) || !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("the other replica: err = %v, want a RefreshInDoubtError", err)
	}
	wantNoReuse(t, fake, 1)
	if st, err := store.Load(t.Context(), "u"); err != nil || st.AccessToken != old.AccessToken || st.Spending == nil {
		t.Errorf("store holds %+v, %v; want the old pair kept, marked as being spent", st, err)
	}

	// The next Token after the backoff stores it.
	a.pendingPair().retryAt.Store(0)
	if got, err := a.Token(); err != nil || got != tok {
		t.Fatalf("Token() = %v, %v", got, err)
	}
	if a.Pending() {
		t.Fatal("still pending after a Token call with the store back")
	}
	st, err := store.Load(t.Context(), "u")
	if err != nil || st.AccessToken != tok.AccessToken || st.RefreshToken != tok.RefreshToken || st.Spending != nil {
		t.Fatalf("store holds %+v, %v; want the refreshed pair, unmarked", st, err)
	}
	// The replica in doubt takes it up at its next look, with no request.
	b.state().recheckAt.Store(0)
	if got, err := b.Token(); err != nil || got.AccessToken != tok.AccessToken {
		t.Errorf("the other replica after the pair was stored: %v, %v", got, err)
	}
	// And the new refresh token is the one spent next.
	fake.ExpireAccessToken(tok.AccessToken)
	if got, err := a.ForceRefresh(t.Context(), tok); err != nil || got.AccessToken == tok.AccessToken {
		t.Errorf("next refresh: %v, %v", got, err)
	}
	wantNoReuse(t, fake, 2)
}

// TestPendingPairBlocksRefresh: while a pair is pending, the source refreshes nothing: the store
// holds the refresh token it replaced, which is spent. FlushPending stores it.
func TestPendingPairBlocksRefresh(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
	seedStored(t, store, fake, c, "u")
	store.failing.Store(3)
	a := replica(c, store, "u")
	tok, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	// Twitch kills the new access token early; the store is still away.
	fake.ExpireAccessToken(tok.AccessToken)
	if _, err := a.ForceRefresh(t.Context(), tok); err == nil {
		t.Error("ForceRefresh with a pending pair and the store away: want the store's error")
	}
	wantNoReuse(t, fake, 1)
	store.failing.Store(0)
	if err := a.FlushPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, err := a.ForceRefresh(t.Context(), tok); err != nil || got.AccessToken == tok.AccessToken {
		t.Errorf("after the pair was stored: %v, %v", got, err)
	}
	wantNoReuse(t, fake, 2)
}

// TestMarkHolderStoresMeanwhile: a replica that finds another's mark waits for that holder's
// pair, and takes it up when it comes, with no request of its own.
func TestMarkHolderStoresMeanwhile(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
	seedStored(t, store, fake, c, "u")
	store.failing.Store(1)
	a := replica(c, store, "u")
	tok, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	b := replica(c, &loadHook{TokenStore: store.FileStore, hook: func() {
		a.FlushPending(context.Background()) // the holder stores its pair while b waits
	}}, "u")
	got, err := b.Token()
	if err != nil || got.AccessToken != tok.AccessToken {
		t.Errorf("the waiting replica: %v, %v; want the holder's %q", got, err, tok.AccessToken)
	}
	wantNoReuse(t, fake, 1)
}

// loadHook runs hook once, at its third Load (the first inside awaitMark's polling).
type loadHook struct {
	TokenStore
	n    atomic.Int32
	hook func()
}

func (l *loadHook) Load(ctx context.Context, key string) (*StoredToken, error) {
	if l.n.Add(1) == 2 {
		l.hook()
	}
	return l.TokenStore.Load(ctx, key)
}

// TestLostRefreshAnswer: Twitch takes the refresh token and the answer is lost on the way back. A
// public client's refresh token is then never sent again, by this source or another; a
// confidential client's is sent again at the next refresh.
func TestLostRefreshAnswer(t *testing.T) {
	for _, public := range []bool{true, false} {
		name := map[bool]string{true: "public", false: "confidential"}[public]
		t.Run(name, func(t *testing.T) {
			c, fake := newTestClient(t)
			if public {
				c = publicClient(fake)
			}
			store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
			old := seedStored(t, store, fake, c, "u")
			fake.Fail("token", faketwitch.Fault{Lose: true, Count: 1})
			a := replica(c, store, "u")
			_, err := a.Token()
			if errors.Is(err, ErrRefreshInDoubt) != public || err == nil {
				t.Fatalf("err = %v; want an error, in doubt only for a public client", err)
			}
			if !public {
				endBackoff(&a.tokenCache)
				tok, err := a.Token()
				if err != nil || tok.AccessToken == old.AccessToken {
					t.Errorf("the next refresh: %v, %v; want the refresh token sent again", tok, err)
				}
				if n := fake.CountGrant("refresh_token"); n != 2 {
					t.Errorf("%d refreshes, want 2", n)
				}
				return
			}
			if _, err := a.Token(); !errors.Is(err, ErrRefreshInDoubt) {
				t.Errorf("the next call: %v, want the doubt again", err)
			}
			if _, err := replica(c, store, "u").Token(); !errors.Is(err, ErrRefreshInDoubt) {
				t.Errorf("another replica: %v, want the doubt", err)
			}
			wantNoReuse(t, fake, 1)
			if st, err := store.Load(t.Context(), "u"); err != nil || st.RefreshToken != old.RefreshToken || st.Spending == nil {
				t.Errorf("store holds %+v, %v; want the record kept, marked", st, err)
			}
		})
	}
}

// TestRefreshTimedOutInDoubt: a public client's refresh whose answer did not come in time may have
// been spent: it is not sent again.
func TestRefreshTimedOutInDoubt(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	c.HTTPClient = &http.Client{Timeout: 200 * time.Millisecond}
	store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
	seedStored(t, store, fake, c, "u")
	fake.Fail("token", faketwitch.Fault{Hang: true, Count: 1})
	a := replica(c, store, "u")
	if _, err := a.Token(); !errors.Is(err, ErrRefreshInDoubt) {
		t.Fatalf("err = %v, want the doubt", err)
	}
	if _, err := a.Token(); !errors.Is(err, ErrRefreshInDoubt) {
		t.Fatalf("err = %v, want the doubt", err)
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refresh requests, want 1", n)
	}
}

// TestRefreshNeverSentIsRetried: a refresh whose request never left (the dial was refused) spent
// nothing: it is a transient failure, not a refresh in doubt, and the refresh token is sent when
// the network is back.
func TestRefreshNeverSentIsRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/oauth2/"
	l.Close()
	wantNeverSent(t, closed, nil)
}

// TestRefreshHandshakeTimeoutIsRetried: a refresh whose TLS handshake never completed (the server
// took the connection and said nothing) sent nothing either.
func TestRefreshHandshakeTimeoutIsRetried(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepting := make(chan struct{})
	t.Cleanup(func() { l.Close(); <-accepting })
	go func() { // takes connections and never answers the handshake
		defer close(accepting)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	wantNeverSent(t, "https://"+l.Addr().String()+"/oauth2/", &http.Client{Transport: &http.Transport{TLSHandshakeTimeout: 100 * time.Millisecond}})
}

// wantNeverSent checks that a public client's refresh through base (with hc), where it never
// reaches Twitch, fails as a transient failure, not a doubt, leaves the stored pair as it was, and
// is sent when the client reaches Twitch again.
func wantNeverSent(t *testing.T, base string, hc *http.Client) {
	t.Helper()
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
	old := seedStored(t, store, fake, c, "u")
	c.AuthBaseURL, c.HTTPClient = base, hc
	a := replica(c, store, "u")
	_, err := a.Token()
	if err == nil || errors.Is(err, ErrRefreshInDoubt) || errors.Is(err, ErrInvalidRefreshToken) {
		t.Fatalf("err = %v; want a transient error, not a doubt", err)
	}
	if st, err := store.Load(t.Context(), "u"); err != nil || st.Spending != nil || st.RefreshToken != old.RefreshToken {
		t.Fatalf("store holds %+v, %v; want the old pair, unmarked", st, err)
	}
	c.AuthBaseURL, c.HTTPClient = fake.BaseURL(), nil
	endBackoff(&a.tokenCache)
	if tok, err := a.Token(); err != nil || tok.AccessToken == old.AccessToken {
		t.Errorf("after the network came back: %v, %v", tok, err)
	}
	wantNoReuse(t, fake, 1)
}

// TestRefreshBackoff: a refresh answered 429 with Retry-After, or 500, is not sent again by a
// storm of callers before the wait (or the backoff) has passed: one request, and every caller
// gets its error.
func TestRefreshBackoff(t *testing.T) {
	tests := []struct {
		name  string
		fault faketwitch.Fault
		after time.Duration
	}{
		{"429 Retry-After", faketwitch.Fault{Status: http.StatusTooManyRequests, Body: `{"status":429,"message":"Too Many Requests"}`,
			Header: map[string]string{"Retry-After": "30"}}, 30 * time.Second},
		{"500", faketwitch.Fault{Status: http.StatusInternalServerError}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake := newTestClient(t)
			store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
			seedStored(t, store, fake, c, "u")
			fake.Fail("token", tt.fault)
			src := replica(c, store, "u")
			var wg sync.WaitGroup
			var bad atomic.Int32
			for range 8 {
				wg.Go(func() {
					for range 450 {
						_, err := src.Token()
						var ae *APIError
						if !errors.As(err, &ae) || ae.RetryAfter != tt.after {
							bad.Add(1)
						}
					}
				})
			}
			wg.Wait()
			if n := fake.CountGrant("refresh_token"); n != 1 {
				t.Errorf("3600 Token calls sent %d refresh requests, want 1", n)
			}
			if n := bad.Load(); n != 0 {
				t.Errorf("%d calls got another error than the answer's, with RetryAfter %v", n, tt.after)
			}
			if f := src.backedOff(); f == nil || time.Until(f.until) < tt.after-time.Second {
				t.Errorf("floor %+v, want at least %v ahead", f, tt.after)
			}
		})
	}
}

// TestRetryAfterHeader: Retry-After in seconds or as a date, and Ratelimit-Reset, become
// APIError.RetryAfter; nonsense becomes 0, and a wait of days is capped.
func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		h    map[string]string
		want time.Duration
	}{
		{map[string]string{"Retry-After": "30"}, 30 * time.Second},
		{map[string]string{"Retry-After": now.Add(time.Minute).Format(http.TimeFormat)}, time.Minute},
		{map[string]string{"Ratelimit-Reset": "1796126460"}, time.Minute}, // now + 60 s
		{map[string]string{"Retry-After": "-5"}, 0},
		{map[string]string{"Retry-After": "soon"}, 0},
		{map[string]string{"Retry-After": "999999999"}, maxRetryAfter},
		{map[string]string{"Ratelimit-Reset": "1"}, 0},
		{nil, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		for k, v := range tt.h {
			h.Set(k, v)
		}
		if got := retryAfter(h, now); got != tt.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tt.h, got, tt.want)
		}
	}
}

// TestKillAfterRefreshBeforeSave: a process killed (SIGKILL) after Twitch answered a public
// client's refresh and before it stored the new pair. The next process must not send the spent
// refresh token: the mark tells it, and it fails with the doubt, the stored record kept.
func TestKillAfterRefreshBeforeSave(t *testing.T) {
	if path := os.Getenv("TWITCHOAUTH_KILL_CHILD"); path != "" {
		killChild(t, path, os.Getenv("TWITCHOAUTH_KILL_BASE"))
		return
	}
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
	old := seedStored(t, store, fake, c, "u")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	killAtSave(t, ctx, store, fake)

	_, err := replica(c, store, "u").Token()
	if !errors.Is(err, ErrRefreshInDoubt) || !errors.Is(err, ErrInvalidRefreshToken) {
		t.Errorf("the next process: err = %v, want the doubt", err)
	}
	wantNoReuse(t, fake, 1)
	if st, err := store.Load(t.Context(), "u"); err != nil || st.RefreshToken != old.RefreshToken || st.Spending == nil {
		t.Errorf("stored record %+v, %v; want it kept, with the dead process's mark", st, err)
	}
}

// TestKillDecidedWithinBound: as TestKillAfterRefreshBeforeSave, with the next process's source
// as a program makes it (the default lock ttl and mark bound). The dead process's file lock died
// with it: what is tested is the bound. The next process fails with the doubt alone (not a lease
// or context error), 35 s after the dead holder's mark at most and not before a refresh could
// have ended (30 s), sending nothing; the record is kept, mark and all.
func TestKillDecidedWithinBound(t *testing.T) {
	t.Parallel()
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
	old := seedStored(t, store, fake, c, "u")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	killAtSave(t, ctx, store, fake)
	marked, err := store.Load(ctx, "u")
	if err != nil || marked.Spending == nil || marked.RefreshToken != old.RefreshToken {
		t.Fatalf("stored record %+v, %v; want the old pair with the dead process's mark", marked, err)
	}

	_, err = NewStoreTokenSource(c, store, "u", nil).TokenContext(ctx)
	took := time.Since(marked.Spending.At)
	t.Logf("the next process decided %v after the dead holder's mark: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, ErrRefreshInDoubt) || !errors.Is(err, ErrInvalidRefreshToken) ||
		errors.Is(err, ErrLeaseLost) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("the next process: err = %v, want the doubt alone", err)
	}
	if took > defaultMarkBound+2*time.Second || took < refreshTimeout {
		t.Errorf("decided %v after the mark; want within %v of it, and no sooner than a refresh may take (%v)", took, defaultMarkBound, refreshTimeout)
	}
	wantNoReuse(t, fake, 1)
	if st, err := store.Load(ctx, "u"); err != nil || !st.Matches(marked) || !st.Spending.At.Equal(marked.Spending.At) {
		t.Errorf("stored record %+v, %v; want it kept, with the dead process's mark", st, err)
	}
}

// killAtSave runs this test binary as a process that refreshes the token of store's key "u" at
// the fake (see killChild), and kills it (SIGKILL: no deferred function, no unlock) once Twitch
// has answered and before it stores the new pair.
func killAtSave(t *testing.T, ctx context.Context, store *FileStore, fake *faketwitch.Server) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillAfterRefreshBeforeSave$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TWITCHOAUTH_KILL_CHILD="+store.Path, "TWITCHOAUTH_KILL_BASE="+fake.BaseURL())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	saving := false
	for sc := bufio.NewScanner(out); sc.Scan(); {
		if sc.Text() == "SAVING" {
			saving = true
			break
		}
	}
	cmd.Process.Kill() // SIGKILL: no deferred function, no unlock
	cmd.Wait()
	if !saving {
		t.Fatal("the child never got to save the refreshed pair")
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Fatalf("%d refreshes before the kill, want 1", n)
	}
}

// blockingSave is a FileStore that, asked to store a refreshed pair in place of a marked one,
// says SAVING on standard output and never returns: the process is killed there.
type blockingSave struct{ *FileStore }

func (b blockingSave) SaveIf(ctx context.Context, key string, prev, next *StoredToken) error {
	if prev.Spending != nil && next.Spending == nil && next.RefreshToken != prev.RefreshToken {
		fmt.Println("SAVING")
		select {}
	}
	return b.FileStore.SaveIf(ctx, key, prev, next)
}

func killChild(t *testing.T, path, base string) {
	c := NewClient(faketwitch.PublicClientID, "")
	c.AuthBaseURL = base
	src := NewStoreTokenSource(c, blockingSave{&FileStore{Path: path}}, "u", nil)
	_, err := src.Token()
	t.Fatalf("Token() returned (%v); the parent should have killed this process", err)
}

// TestPublicRefreshOutlivesCallerContext: a public client's refresh, once sent, is seen through
// though the caller's context ends: its answer is stored, not thrown away into a doubt.
func TestPublicRefreshOutlivesCallerContext(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
	old := seedStored(t, store, fake, c, "u")
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 300 * time.Millisecond, Count: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	src := replica(c, store, "u")
	if _, err := src.TokenContext(ctx); err != nil && errors.Is(err, ErrRefreshInDoubt) {
		t.Fatalf("TokenContext = %v; the refresh was thrown away", err)
	}
	st, err := store.Load(t.Context(), "u")
	if err != nil || st.RefreshToken == old.RefreshToken || st.Spending != nil {
		t.Fatalf("store holds %+v, %v; want the refreshed pair", st, err)
	}
	if tok, err := src.Token(); err != nil || tok.AccessToken != st.AccessToken {
		t.Errorf("Token() = %v, %v; want the stored pair", tok, err)
	}
	wantNoReuse(t, fake, 1)
}

// hangingRenew is a FileStore whose lease renewals take hang, whatever their context says, as a
// store client that ignores deadlines does.
type hangingRenew struct {
	*FileStore
	hang time.Duration
}

func (h hangingRenew) LockLease(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	l, err := h.FileStore.LockLease(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return slowLease{l, h.hang}, nil
}

type slowLease struct {
	Lease
	hang time.Duration
}

func (s slowLease) Renew(ctx context.Context) error {
	time.Sleep(s.hang)
	return s.Lease.Renew(context.Background())
}

// TestLeaseDeadlineWhileRenewalHangs: the work under a lease stops at the lease's deadline even
// while a renewal is still waiting for the store, so no work outlives the lease.
func TestLeaseDeadlineWhileRenewalHangs(t *testing.T) {
	c, _ := newTestClient(t)
	store := hangingRenew{&FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}, 4 * time.Second}
	const ttl = 600 * time.Millisecond
	start := time.Now()
	var stopped time.Duration
	err := withStoreLock(t.Context(), c, store, "k", ttl, func(ctx context.Context) error {
		<-ctx.Done()
		stopped = time.Since(start)
		return context.Cause(ctx)
	})
	if !errors.Is(err, ErrLeaseLost) {
		t.Errorf("err = %v, want ErrLeaseLost", err)
	}
	if stopped > 2*time.Second { // the deadline is at 540 ms; the renewal comes back at 4.2 s
		t.Errorf("the work stopped %v after the lock was taken, its lease being %v: past the lease", stopped, ttl)
	}
}

// refusingSaves is a flakyStore whose plain saves fail too while refuse is set.
type refusingSaves struct {
	*flakyStore
	refuse atomic.Bool
}

func (r *refusingSaves) Save(ctx context.Context, key string, st *StoredToken) error {
	if r.refuse.Load() {
		return errors.New("store unreachable")
	}
	return r.flakyStore.Save(ctx, key, st)
}

// TestSetTokenKeepsTokenTheStoreRefused: a source holds a refreshed pair the store refused (its
// old refresh token spent, and marked so in the store) when a new login's token is handed to it,
// and the store refuses that too. The new token is used and kept, stored before anything else
// once the store is back, in place of the marked pair; and no refresh token is sent twice, then
// or at the next refresh.
func TestSetTokenKeepsTokenTheStoreRefused(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &refusingSaves{flakyStore: &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}}
	seedStored(t, store, fake, c, "u")
	store.failing.Store(1)
	src := replica(c, store, "u")
	if _, err := src.Token(); err != nil || !src.Pending() {
		t.Fatalf("Token() = %v, pending %v; want the refreshed pair, pending", err, src.Pending())
	}

	store.refuse.Store(true)
	access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0) // a new login
	login := &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(time.Hour)}
	if err := src.SetTokenContext(t.Context(), login); err == nil {
		t.Fatal("SetTokenContext with the store refusing: no error")
	}
	if tok, err := src.Token(); err != nil || tok.AccessToken != access || !src.Pending() {
		t.Fatalf("after SetToken: %v, %v, pending %v; want the new login's token, pending", tok, err, src.Pending())
	}

	store.refuse.Store(false)
	if err := src.FlushPending(t.Context()); err != nil {
		t.Fatalf("FlushPending with the store back: %v", err)
	}
	if st, err := store.Load(t.Context(), "u"); err != nil || st.AccessToken != access || st.RefreshToken != refresh || st.Spending != nil {
		t.Fatalf("store holds %+v, %v; want the new login's pair, unmarked", st, err)
	}
	fake.ExpireAccessToken(access)
	if tok, err := src.ForceRefresh(t.Context(), nil); err != nil || tok.AccessToken == access {
		t.Fatalf("refresh of the new login's token: %v, %v", tok, err)
	}
	wantNoReuse(t, fake, 2)
}

// TestOwnMark: a source finds its own mark on the stored refresh token. One it never sent (the
// reply to the mark's write was lost, and the pair it held was then superseded) is no doubt: the
// source marks the refresh token again and sends it, once. One it sent (its new pair was not
// stored) is in doubt, and never sent again.
func TestOwnMark(t *testing.T) {
	for _, sent := range []bool{false, true} {
		t.Run(map[bool]string{false: "unsent", true: "sent"}[sent], func(t *testing.T) {
			_, fake := newTestClient(t)
			c := publicClient(fake)
			store := &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}
			old := seedStored(t, store, fake, c, "u")
			src := replica(c, store, "u")
			marked := *old
			marked.Spending = &SpendMark{Refresh: RefreshTokenHash(old.RefreshToken), At: time.Now().UTC(), Holder: src.holder()}
			if err := store.Save(t.Context(), "u", &marked); err != nil {
				t.Fatal(err)
			}
			if sent {
				src.state().sent = marked.Spending.Refresh
			}
			_, err := src.Token()
			if errors.Is(err, ErrRefreshInDoubt) != sent || (!sent && err != nil) {
				t.Errorf("Token() = %v; want the doubt only for a refresh token the source sent", err)
			}
			wantNoReuse(t, fake, map[bool]int{false: 1, true: 0}[sent])
		})
	}
}

// remarking is a FileStore that, when a refreshed pair is about to be stored in place of a marked
// one, first rewrites the stored record as fresh, with the same pair and another holder's mark:
// the fence refuses the save, and the record then found holds the refresh token just spent.
type remarking struct {
	*FileStore
	done atomic.Bool
}

func (r *remarking) SaveIf(ctx context.Context, key string, prev, next *StoredToken) error {
	if prev.Spending != nil && next.Spending == nil && next.RefreshToken != prev.RefreshToken && !r.done.Swap(true) {
		other := *prev
		other.Expiry = time.Now().Add(time.Hour)
		other.Spending = &SpendMark{Refresh: prev.Spending.Refresh, At: time.Now().UTC(), Holder: "another"}
		if err := r.FileStore.Save(ctx, key, &other); err != nil {
			return err
		}
	}
	return r.FileStore.SaveIf(ctx, key, prev, next)
}

// TestRefreshedPairNotDroppedForSpentOne: when the fenced save of a refreshed pair is refused and
// the store is found holding the pair whose refresh token was just spent (fresh by its record),
// that pair is not taken up in place of the new one: the new pair is used and stored.
func TestRefreshedPairNotDroppedForSpentOne(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &remarking{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
	old := seedStored(t, store, fake, c, "u")
	tok, err := replica(c, store, "u").Token()
	if err != nil || tok.AccessToken == old.AccessToken {
		t.Fatalf("Token() = %v, %v; want the refreshed pair, not the spent one", tok, err)
	}
	if st, err := store.Load(t.Context(), "u"); err != nil || st.RefreshToken != tok.RefreshToken {
		t.Errorf("store holds %+v, %v; want the refreshed pair", st, err)
	}
	wantNoReuse(t, fake, 1)
}

// TestBindStoresRefreshedPairBeforeFailing: Bind refreshes the stored token of a public client,
// the store refuses the new pair, then validating it fails for a while (a 503): Bind fails, but
// stores the pair before giving up, so that the next Bind uses it, with no login and no refresh
// token sent twice.
func TestBindStoresRefreshedPairBeforeFailing(t *testing.T) {
	_, fake := newTestClient(t)
	c := publicClient(fake)
	store := &flakyStore{FileStore: &FileStore{Path: filepath.Join(t.TempDir(), "tok.json")}}
	seedStored(t, store, fake, c, "")
	store.failing.Store(1)
	fake.Fail("validate", faketwitch.Fault{Pass: true, Count: 1})  // the stored token: refused as expired
	fake.Fail("validate", faketwitch.Fault{Status: 503, Count: 1}) // the refreshed one: an outage
	bind := func() (*UserTokenSource, error) {
		h := NewUserAuthenticationStorageHelper(c, []Scope{ScopeChatRead})
		h.Store, h.LockTTL = store, 2*time.Second
		h.AuthGenerator = func(context.Context, *Client, []Scope) (*oauth2.Token, error) {
			t.Error("a login was started")
			return nil, ErrAccessDenied
		}
		return h.Bind(t.Context())
	}
	if _, err := bind(); err == nil {
		t.Fatal("Bind with validation failing: no error")
	}
	st, err := store.Load(t.Context(), "")
	if err != nil || st.Spending != nil {
		t.Fatalf("store holds %+v, %v; want the refreshed pair, unmarked", st, err)
	}
	src, err := bind()
	if err != nil {
		t.Fatalf("the next Bind: %v", err)
	}
	if tok, err := src.Token(); err != nil || tok.AccessToken != st.AccessToken {
		t.Errorf("the next Bind's token: %v, %v; want the stored pair", tok, err)
	}
	wantNoReuse(t, fake, 1)
}
