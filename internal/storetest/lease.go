package storetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// This file tests what the optional interfaces (twitchoauth.LeaseLocker, ConditionalSaver) are
// for: a lease that outlives a slow refresh, a lease counted from before the lock was asked for,
// and a fence against a replica whose lease ended under it. Twitch's side is a public client,
// whose refresh tokens are single-use: a refresh token sent twice fails the second time.

// compose returns a store with base's three methods, and LockLease and SaveIf when ll and cs are
// not nil.
func compose(base twitchoauth.TokenStore, ll twitchoauth.LeaseLocker, cs twitchoauth.ConditionalSaver) twitchoauth.TokenStore {
	switch {
	case ll != nil && cs != nil:
		return struct {
			twitchoauth.TokenStore
			twitchoauth.LeaseLocker
			twitchoauth.ConditionalSaver
		}{base, ll, cs}
	case ll != nil:
		return struct {
			twitchoauth.TokenStore
			twitchoauth.LeaseLocker
		}{base, ll}
	case cs != nil:
		return struct {
			twitchoauth.TokenStore
			twitchoauth.ConditionalSaver
		}{base, cs}
	}
	return base
}

// conditional returns store as a ConditionalSaver, or nil.
func conditional(store twitchoauth.TokenStore) twitchoauth.ConditionalSaver {
	cs, _ := store.(twitchoauth.ConditionalSaver)
	return cs
}

// helperFor returns a storage helper of c on key in store, with a lock ttl of ttl, that must not
// log the user in.
func helperFor(t *testing.T, c *twitchoauth.Client, store twitchoauth.TokenStore, key string, ttl time.Duration) *twitchoauth.UserAuthenticationStorageHelper {
	h := twitchoauth.NewUserAuthenticationStorageHelper(c, []twitchoauth.Scope{twitchoauth.ScopeChatRead})
	h.Store, h.StoreKey, h.LockTTL = store, key, ttl
	h.AuthGenerator = func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
		t.Error("a login was started")
		return nil, errors.New("no login in this test")
	}
	return h
}

// bind binds helpers of c on key, one per store, one after the other.
func bind(t *testing.T, c *twitchoauth.Client, key string, ttl time.Duration, stores ...twitchoauth.TokenStore) []*twitchoauth.UserTokenSource {
	t.Helper()
	var srcs []*twitchoauth.UserTokenSource
	for _, store := range stores {
		src, err := helperFor(t, c, store, key, ttl).Bind(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, src)
	}
	return srcs
}

// wantOneRefresh checks that the replicas ended without error, holding the same new token, which
// the store holds, after a single refresh.
func wantOneRefresh(t *testing.T, fake *faketwitch.Server, store twitchoauth.TokenStore, key, old string, tokens []string, errs []error) {
	t.Helper()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refresh requests reached Twitch, want 1", n)
	}
	for i, tok := range tokens {
		if tok != tokens[0] || tok == old {
			t.Errorf("replica %d holds %q, replica 0 %q, the old token was %q", i, tok, tokens[0], old)
		}
	}
	if st, err := store.Load(t.Context(), key); err != nil || st.AccessToken != tokens[0] {
		t.Errorf("store holds %v, %v; the replicas %q", accessOf(st), err, tokens[0])
	}
}

// accessOf returns the access token of a *twitchoauth.StoredToken or *oauth2.Token, for a failure
// message (the fake's tokens, which name nothing else).
func accessOf(tok any) string {
	switch tok := tok.(type) {
	case *twitchoauth.StoredToken:
		if tok != nil {
			return fmt.Sprintf("%q", tok.AccessToken)
		}
	case *oauth2.Token:
		if tok != nil {
			return fmt.Sprintf("%q", tok.AccessToken)
		}
	}
	return "nothing"
}

// testSaveIf: SaveIf stores only over the pair it names, whatever else the stored token says,
// and of replicas racing to replace one pair exactly one does.
func testSaveIf(t *testing.T, open Open) {
	connect := open(t)
	cs := implements[twitchoauth.ConditionalSaver](t, connect(t))
	ctx := t.Context()
	load := func() *twitchoauth.StoredToken {
		t.Helper()
		st, err := connect(t).Load(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	p0 := &twitchoauth.StoredToken{AccessToken: "a0", RefreshToken: "r0", UserID: "1"}
	next := &twitchoauth.StoredToken{AccessToken: "a1", RefreshToken: "r1", UserID: "1", Login: "one"}
	if err := cs.SaveIf(ctx, "k", p0, next); !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("SaveIf over nothing: err = %v, want ErrTokenChanged", err)
	}
	if _, err := connect(t).Load(ctx, "k"); !errors.Is(err, twitchoauth.ErrTokenNotFound) {
		t.Errorf("SaveIf over nothing stored something: %v", err)
	}
	if err := connect(t).Save(ctx, "k", p0); err != nil {
		t.Fatal(err)
	}
	for _, prev := range []*twitchoauth.StoredToken{
		{AccessToken: "other", RefreshToken: "r0"},
		{AccessToken: "a0", RefreshToken: "other"},
		{AccessToken: "a0"},
	} {
		if err := cs.SaveIf(ctx, "k", prev, next); !errors.Is(err, twitchoauth.ErrTokenChanged) {
			t.Errorf("SaveIf over %q/%q while a0/r0 is stored: err = %v, want ErrTokenChanged", prev.AccessToken, prev.RefreshToken, err)
		}
		if st := load(); st.AccessToken != "a0" || st.RefreshToken != "r0" {
			t.Errorf("a refused SaveIf changed the token: %+v", st)
		}
	}
	// Only the pair counts: prev need not say what else the stored token does.
	if err := cs.SaveIf(ctx, "k", &twitchoauth.StoredToken{AccessToken: "a0", RefreshToken: "r0"}, next); err != nil {
		t.Fatalf("SaveIf over the stored pair: %v", err)
	}
	if st := load(); st.AccessToken != "a1" || st.RefreshToken != "r1" || st.Login != "one" {
		t.Errorf("after SaveIf: %+v", st)
	}
	// A token without a refresh token matches a prev without one.
	if err := connect(t).Save(ctx, "k", &twitchoauth.StoredToken{AccessToken: "a2"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.SaveIf(ctx, "k", &twitchoauth.StoredToken{AccessToken: "a2"}, p0); err != nil {
		t.Errorf("SaveIf over a token without refresh token: %v", err)
	}

	const replicas = 8
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i := range replicas {
		r := connect(t).(twitchoauth.ConditionalSaver)
		wg.Go(func() {
			errs[i] = r.SaveIf(ctx, "k", p0, &twitchoauth.StoredToken{AccessToken: fmt.Sprint("race-", i), RefreshToken: "r"})
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("replicas %d and %d both replaced the same pair", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, twitchoauth.ErrTokenChanged):
			t.Errorf("replica %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no replica replaced the pair")
	}
	if st := load(); st.AccessToken != fmt.Sprint("race-", winner) {
		t.Errorf("store holds %q, the winner was %d", st.AccessToken, winner)
	}
}

// testLeaseRenew: a renewed lease outlives its ttl; one that ran out and was taken over is lost:
// Renew says so, and neither it nor Unlock disturbs the new holder.
func testLeaseRenew(t *testing.T, open Open) {
	connect := open(t)
	a := connect(t)
	ll := implements[twitchoauth.LeaseLocker](t, a)
	b, c := connect(t), connect(t)
	ctx := t.Context()

	const ttl = 200 * time.Millisecond
	lease, err := ll.LockLease(ctx, "k", ttl)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	renewed := make(chan error, 1)
	go func() {
		tick := time.NewTicker(ttl / 5)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				renewed <- nil
				return
			case <-tick.C:
				if err := lease.Renew(ctx); err != nil {
					renewed <- err
					return
				}
			}
		}
	}()
	wait, cancel := context.WithTimeout(ctx, 3*ttl)
	defer cancel()
	if _, err := b.Lock(wait, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock of a lease renewed past its ttl: err = %v, want it to wait until ctx ends", err)
	}
	close(stop)
	if err := <-renewed; err != nil {
		t.Fatalf("Renew of a held lease: %v", err)
	}
	if err := lease.Unlock(); err != nil {
		t.Fatal(err)
	}

	lost, err := ll.LockLease(ctx, "k2", 100*time.Millisecond) // never renewed
	if err != nil {
		t.Fatal(err)
	}
	wait2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	unlockB, err := b.Lock(wait2, "k2", time.Minute)
	if err != nil {
		t.Fatalf("Lock after the lease ran out: %v", err)
	}
	if err := lost.Renew(ctx); !errors.Is(err, twitchoauth.ErrLeaseLost) {
		t.Errorf("Renew of a lease taken over: err = %v, want ErrLeaseLost", err)
	}
	if err := lost.Unlock(); err != nil {
		t.Errorf("Unlock of a lease taken over: %v, want nil", err)
	}
	short, cancel3 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel3()
	if _, err := c.Lock(short, "k2", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the lost lease's Renew or Unlock freed the new holder's lock: %v", err)
	}
	if err := unlockB(); err != nil {
		t.Error(err)
	}
}

// testSlowRefreshRenewsLease: Twitch answers a refresh after longer than the lock's ttl. The
// holder's lease is renewed while it waits, so the other replica waits too and adopts the new
// token: one refresh, no "Invalid refresh token", both with the new token. Without renewal, the
// holder would give up at the end of its lease while Twitch spent the refresh token, and the other
// replica would send it again.
func testSlowRefreshRenewsLease(t *testing.T, open Open) {
	connect := open(t)
	implements[twitchoauth.LeaseLocker](t, connect(t))
	const ttl = 300 * time.Millisecond
	slow := faketwitch.Fault{Pass: true, Delay: 2 * ttl}

	t.Run("Bind", func(t *testing.T) { // two replicas start on a token Twitch has expired
		c, fake := PublicTwitch(t)
		old := seedFor(t, connect(t), fake, c.ClientID, faketwitch.UserID, "bind", true)
		fake.Fail("token", slow)
		tokens, errs := make([]string, 2), make([]error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			h := helperFor(t, c, connect(t), "bind", ttl)
			wg.Go(func() {
				<-start
				src, err := h.Bind(t.Context())
				if err == nil {
					var tok *oauth2.Token
					tok, err = src.Token()
					if err == nil {
						tokens[i] = tok.AccessToken
					}
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		wantOneRefresh(t, fake, connect(t), "bind", old.AccessToken, tokens, errs)
	})

	t.Run("Source", func(t *testing.T) { // two running replicas find their token rejected
		c, fake := PublicTwitch(t)
		old := seedFor(t, connect(t), fake, c.ClientID, faketwitch.UserID, "source", false)
		srcs := bind(t, c, "source", ttl, connect(t), connect(t))
		fake.Fail("token", slow)
		tokens, errs := make([]string, 2), make([]error, 2)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i, src := range srcs {
			wg.Go(func() {
				<-start
				tok, err := src.ForceRefresh(t.Context(), nil)
				if err == nil {
					tokens[i] = tok.AccessToken
				}
				errs[i] = err
			})
		}
		close(start)
		wg.Wait()
		wantOneRefresh(t, fake, connect(t), "source", old.AccessToken, tokens, errs)
	})
}

// lateLock is a store whose next lock, once armed, is taken at once but answered late, as a slow
// network or a stalled client would answer it. It tracks how long the lease of its last lock is
// sure to last: ttl from when the lock, or its latest renewal, was asked for.
type lateLock struct {
	twitchoauth.TokenStore
	by     time.Duration // how late the armed lock is answered
	armed  atomic.Bool
	locked chan struct{} // closed when the armed lock is taken

	mu  sync.Mutex
	end time.Time
}

func newLateLock(inner twitchoauth.TokenStore, by time.Duration) *lateLock {
	return &lateLock{TokenStore: inner, by: by, locked: make(chan struct{})}
}

func (l *lateLock) leaseEnd() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.end
}

func (l *lateLock) extended(sent time.Time, ttl time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.end = sent.Add(ttl)
}

// taken records a lock asked for at sent, and holds its reply back if it is the armed one.
func (l *lateLock) taken(ctx context.Context, sent time.Time, ttl time.Duration) {
	l.extended(sent, ttl)
	if l.armed.CompareAndSwap(true, false) {
		close(l.locked)
		t := time.NewTimer(l.by)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

func (l *lateLock) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	sent := time.Now()
	unlock, err := l.TokenStore.Lock(ctx, key, ttl)
	if err == nil {
		l.taken(ctx, sent, ttl)
	}
	return unlock, err
}

// lateLeaser is a lateLock that hands out its inner store's renewable leases.
type lateLeaser struct{ *lateLock }

func (l lateLeaser) LockLease(ctx context.Context, key string, ttl time.Duration) (twitchoauth.Lease, error) {
	sent := time.Now()
	lease, err := l.TokenStore.(twitchoauth.LeaseLocker).LockLease(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	l.taken(ctx, sent, ttl)
	return &trackedLease{Lease: lease, l: l.lateLock, ttl: ttl}, nil
}

type trackedLease struct {
	twitchoauth.Lease
	l   *lateLock
	ttl time.Duration
}

func (tl *trackedLease) Renew(ctx context.Context) error {
	sent := time.Now()
	err := tl.Lease.Renew(ctx)
	if err == nil {
		tl.l.extended(sent, tl.ttl)
	}
	return err
}

// leaseCheck is a transport that notes every token request still in flight when the lease of l
// may have ended: another replica may have taken the lock and sent the same refresh token.
type leaseCheck struct {
	l    *lateLock
	mu   sync.Mutex
	late []string
}

func (c *leaseCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if strings.HasSuffix(req.URL.Path, "/token") {
		if over := time.Since(c.l.leaseEnd()); over > 0 {
			c.mu.Lock()
			c.late = append(c.late, fmt.Sprintf("a token request ended %v after the lease may have", over.Round(time.Millisecond)))
			c.mu.Unlock()
		}
	}
	return resp, err
}

// testLateLockReply: the reply to a replica's lock arrives when most of the lease has gone. The
// lease is counted from before the lock was asked for, not from the reply: the replica renews it
// before it starts to refresh, or, when the store cannot renew, gives the lock up and asks again.
// No refresh of it is in flight once another replica may hold the lock, and Twitch sees one.
func testLateLockReply(t *testing.T, open Open) {
	connect := open(t)
	const ttl = 400 * time.Millisecond
	for _, renewable := range []bool{true, false} {
		name := map[bool]string{true: "Renewable", false: "WithoutRenewal"}[renewable]
		t.Run(name, func(t *testing.T) {
			inner := connect(t)
			ll, ok := inner.(twitchoauth.LeaseLocker)
			if renewable && !ok {
				t.Skip("the store does not implement twitchoauth.LeaseLocker")
			}
			c, fake := PublicTwitch(t)
			key := "late-" + name
			old := seedFor(t, inner, fake, c.ClientID, faketwitch.UserID, key, false)

			late := newLateLock(inner, 3*ttl/4)
			var storeA twitchoauth.TokenStore = compose(late, nil, conditional(inner))
			if renewable && ll != nil {
				storeA = compose(late, lateLeaser{late}, conditional(inner))
			}
			check := &leaseCheck{l: late}
			cA := twitchoauth.NewClient(c.ClientID, c.ClientSecret)
			cA.AuthBaseURL, cA.HTTPClient = c.AuthBaseURL, &http.Client{Transport: check, Timeout: 10 * time.Second}
			srcA := bind(t, cA, key, ttl, storeA)[0]
			srcB := bind(t, c, key, ttl, connect(t))[0]

			fake.Fail("token", faketwitch.Fault{Pass: true, Delay: ttl / 2})
			late.armed.Store(true)
			type result struct {
				tok *oauth2.Token
				err error
			}
			doneA := make(chan result, 1)
			go func() {
				tok, err := srcA.ForceRefresh(t.Context(), nil)
				doneA <- result{tok, err}
			}()
			<-late.locked
			tokB, errB := srcB.ForceRefresh(t.Context(), nil)
			a := <-doneA

			check.mu.Lock()
			for _, msg := range check.late {
				t.Errorf("the replica whose lock was answered late: %s", msg)
			}
			check.mu.Unlock()
			if errB != nil {
				t.Fatalf("the other replica: %v", errB)
			}
			if tokB.AccessToken == old.AccessToken {
				t.Errorf("the other replica holds the old token")
			}
			if st, err := connect(t).Load(t.Context(), key); err != nil || st.AccessToken != tokB.AccessToken {
				t.Errorf("store holds %v, %v; the other replica %q", accessOf(st), err, tokB.AccessToken)
			}
			if a.err != nil || a.tok.AccessToken != tokB.AccessToken {
				t.Errorf("the replica whose lock was answered late: %v, %v; want the other's %q", accessOf(a.tok), a.err, tokB.AccessToken)
			}
			if n := fake.CountGrant("refresh_token"); n != 1 {
				t.Errorf("%d refresh requests reached Twitch, want 1", n)
			}
		})
	}
}

// lapse is a store whose lease ends under its holder once armed: the first Load under a lock
// after it is armed releases the lock and runs hook (another replica's work) before it returns
// what it read. The holder goes on unaware, as one stalled past its lease, or whose lock a Redis
// failover lost, would.
type lapse struct {
	twitchoauth.TokenStore
	mu     sync.Mutex
	unlock func() error // of the lock held now
	hook   func(ctx context.Context)
}

func (l *lapse) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	unlock, err := l.TokenStore.Lock(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	once := sync.OnceValue(unlock)
	l.mu.Lock()
	l.unlock = once
	l.mu.Unlock()
	return once, nil
}

func (l *lapse) Load(ctx context.Context, key string) (*twitchoauth.StoredToken, error) {
	st, err := l.TokenStore.Load(ctx, key)
	l.mu.Lock()
	hook, unlock := l.hook, l.unlock
	l.hook = nil
	l.mu.Unlock()
	if hook != nil && unlock != nil {
		if uerr := unlock(); uerr != nil {
			return nil, fmt.Errorf("storetest: end the lease early: %w", uerr)
		}
		hook(ctx)
	}
	return st, err
}

func (l *lapse) arm(hook func(ctx context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hook = hook
}

// testLapsedLeaseFenced: a replica read the token under its lock, then lost the lease unaware
// while another replica refreshed and stored a newer pair. What the first one saves next must not
// replace that pair: not the pair its own refresh got (it adopts the stored one instead), and not
// the old pair with what validation taught (its refresh token is spent).
func testLapsedLeaseFenced(t *testing.T, open Open) {
	connect := open(t)

	t.Run("Refresh", func(t *testing.T) {
		c, fake := Twitch(t) // a confidential client: both refreshes of one refresh token succeed
		held := seedFor(t, connect(t), fake, c.ClientID, faketwitch.UserID, "fence-refresh", false)
		l := &lapse{TokenStore: connect(t)}
		srcA := twitchoauth.NewStoreTokenSource(c, compose(l, nil, conditional(l.TokenStore)), "fence-refresh", held)
		srcB := twitchoauth.NewStoreTokenSource(c, connect(t), "fence-refresh", held)
		var tokB *oauth2.Token
		var errB error
		l.arm(func(ctx context.Context) { tokB, errB = srcB.ForceRefresh(ctx, nil) })
		tokA, errA := srcA.ForceRefresh(t.Context(), nil)
		if errB != nil {
			t.Fatalf("the other replica: %v", errB)
		}
		if errA != nil {
			t.Fatalf("the replica whose lease ended: %v", errA)
		}
		if n := fake.CountGrant("refresh_token"); n != 2 {
			t.Fatalf("%d refreshes, want 2 (the lapse let both through)", n)
		}
		st, err := connect(t).Load(t.Context(), "fence-refresh")
		if err != nil || st.AccessToken != tokB.AccessToken {
			t.Errorf("store holds %v, %v; want the other replica's %q, stored first", accessOf(st), err, tokB.AccessToken)
		}
		if tokA.AccessToken != tokB.AccessToken {
			t.Errorf("the replica whose lease ended holds %q, want the stored %q", tokA.AccessToken, tokB.AccessToken)
		}
	})

	t.Run("Bind", func(t *testing.T) {
		c, fake := PublicTwitch(t) // the other replica's refresh spends the old refresh token
		access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
		// A pyTwitchAPI file holds only the pair: Bind records what validation says.
		old := &twitchoauth.StoredToken{AccessToken: access, RefreshToken: refresh}
		if err := connect(t).Save(t.Context(), "fence-bind", old); err != nil {
			t.Fatal(err)
		}
		l := &lapse{TokenStore: connect(t)}
		srcB := twitchoauth.NewStoreTokenSource(c, connect(t), "fence-bind", old.Token())
		var tokB *oauth2.Token
		var errB error
		l.arm(func(ctx context.Context) { tokB, errB = srcB.ForceRefresh(ctx, nil) })
		h := helperFor(t, c, compose(l, nil, conditional(l.TokenStore)), "fence-bind", 0)
		if _, err := h.Bind(t.Context()); err != nil {
			t.Fatalf("Bind of the replica whose lease ended: %v", err)
		}
		if errB != nil {
			t.Fatalf("the other replica: %v", errB)
		}
		st, err := connect(t).Load(t.Context(), "fence-bind")
		if err != nil || st.AccessToken != tokB.AccessToken || st.RefreshToken != tokB.RefreshToken {
			t.Fatalf("store holds %v, %v; want the other replica's %q, not the pair whose refresh token it spent", accessOf(st), err, tokB.AccessToken)
		}
		if _, err := c.RefreshAccessToken(t.Context(), st.RefreshToken); err != nil {
			t.Errorf("the stored refresh token: %v", err)
		}
	})
}

// testLeaseReader: a store that reads the token as it takes a lock ([twitchoauth.LeaseReader])
// gives that read once, as Load would have given it then; nothing for a key with no token (the
// caller loads it: a token may have been stored after the read's snapshot), nor for a lease not
// its own. A store that reads nothing so is skipped.
func testLeaseReader(t *testing.T, open Open) {
	connect := open(t)
	s := connect(t)
	lr := implements[twitchoauth.LeaseReader](t, s)
	ctx := t.Context()
	want := &twitchoauth.StoredToken{AccessToken: "acc-loaded", RefreshToken: "ref-loaded", UserID: "42"}
	if err := s.Save(ctx, "k", want); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"k", "none"} {
		lease, err := lr.LockLease(ctx, key, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// A LockLease that fails returns no Lease, not one holding nothing.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if l, err := lr.LockLease(cctx, key, time.Minute); err == nil || l != nil {
			t.Errorf("%s: LockLease of a held lock with its context done = %v, %v; want a nil Lease and an error", key, l != nil, err)
		}
		if other, ok := connect(t).(twitchoauth.LeaseReader); ok {
			if _, gave, _ := other.LeaseRead(lease); gave {
				t.Errorf("%s: another store gave the read of this store's lease", key)
			}
		}
		st, gave, err := lr.LeaseRead(lease)
		switch {
		case key == "k" && !gave:
			t.Errorf("k: LeaseRead gave nothing for the lease LockLease just returned")
		case key == "k" && (err != nil || st.AccessToken != want.AccessToken || st.RefreshToken != want.RefreshToken):
			t.Errorf("k: LeaseRead = %v, %v; want the stored token", accessOf(st), err)
		case key == "none" && gave:
			t.Errorf("none: LeaseRead = %v, %v; want no read for a key with no token", accessOf(st), err)
		}
		if _, again, _ := lr.LeaseRead(lease); again {
			t.Errorf("%s: LeaseRead gave its read twice", key)
		}
		if err := lease.Unlock(); err != nil {
			t.Fatal(err)
		}
	}
}

// testReleasingSaver: a store that stores a lease's last write and ends the lease in one step
// ([twitchoauth.ReleasingSaver]) stores the token as SaveIf would and frees the lock with it, so
// that another holder takes it at once; a save it refuses (ErrTokenChanged) leaves the lock held
// until Unlock; a lease not its own, or of another key, is refused with errors.ErrUnsupported and
// nothing stored. A store that cannot is skipped.
func testReleasingSaver(t *testing.T, open Open) {
	connect := open(t)
	s, other := connect(t), connect(t)
	rs := implements[twitchoauth.ReleasingSaver](t, s)
	ctx := t.Context()
	first := &twitchoauth.StoredToken{AccessToken: "acc-releasing-1", RefreshToken: "ref-releasing-1", UserID: "42"}
	second := &twitchoauth.StoredToken{AccessToken: "acc-releasing-2", RefreshToken: "ref-releasing-2", UserID: "42"}
	if err := s.Save(ctx, "k", first); err != nil {
		t.Fatal(err)
	}
	lease, err := rs.LockLease(ctx, "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Not this store's lease, or not of this key: nothing done.
	if ors, ok := other.(twitchoauth.ReleasingSaver); ok {
		if err := ors.SaveIfUnlock(ctx, lease, "k", first, second); !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("SaveIfUnlock of another store's lease = %v; want errors.ErrUnsupported", err)
		}
	}
	if err := rs.SaveIfUnlock(ctx, lease, "other-key", first, second); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("SaveIfUnlock of the lease of another key = %v; want errors.ErrUnsupported", err)
	}
	// Refused: the stored token is not the one named; the lock stays held.
	if err := rs.SaveIfUnlock(ctx, lease, "k", second, first); !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("SaveIfUnlock against a token not stored = %v; want ErrTokenChanged", err)
	}
	if st, err := other.Load(ctx, "k"); err != nil || st.AccessToken != first.AccessToken {
		t.Fatalf("stored %v, %v; want the token before, untouched", accessOf(st), err)
	}
	if held := tryLock(t, other, "k"); !held {
		t.Error("a refused SaveIfUnlock freed the lock")
	}
	// Stored: the lock is free at once, and Unlock after frees nothing of another holder's.
	if err := rs.SaveIfUnlock(ctx, lease, "k", first, second); err != nil {
		t.Fatalf("SaveIfUnlock: %v", err)
	}
	if st, err := other.Load(ctx, "k"); err != nil || st.AccessToken != second.AccessToken || st.RefreshToken != second.RefreshToken {
		t.Errorf("stored %v, %v; want the token SaveIfUnlock saved", accessOf(st), err)
	}
	unlock, err := other.Lock(ctx, "k", time.Minute)
	if err != nil {
		t.Fatalf("the lock after SaveIfUnlock: %v", err)
	}
	defer unlock()
	if err := lease.Unlock(); err != nil {
		t.Errorf("Unlock after SaveIfUnlock: %v", err)
	}
	if held := tryLock(t, s, "k"); !held {
		t.Error("Unlock after SaveIfUnlock freed another holder's lock")
	}

	// A lease that ran out, and another holder took the lock since: the save, fenced by the token
	// and not by the lease, is made; the other holder's lock stays.
	if err := s.Save(ctx, "lapsed", first); err != nil {
		t.Fatal(err)
	}
	lapsed, err := rs.LockLease(ctx, "lapsed", time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	unlockOther, err := other.Lock(ctx, "lapsed", time.Minute) // once the lease has ended
	if err != nil {
		t.Fatal(err)
	}
	defer unlockOther()
	if err := rs.SaveIfUnlock(ctx, lapsed, "lapsed", first, second); err != nil {
		t.Fatalf("SaveIfUnlock after the lease ended: %v", err)
	}
	if held := tryLock(t, s, "lapsed"); !held {
		t.Error("SaveIfUnlock of a lease that had ended freed the lock another holder took since")
	}
}

// tryLock reports whether key's lock is held by another: a Lock that does not get it within a
// short wait. A lock it gets is released.
func tryLock(t *testing.T, s twitchoauth.TokenStore, key string) (held bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	unlock, err := s.Lock(ctx, key, time.Minute)
	if err == nil {
		unlock()
		return false
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock: %v", err)
	}
	return true
}
