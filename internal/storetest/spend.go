package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// This file tests what the write-ahead mark (twitchoauth.SpendMark) and the pending pair need of a
// store: the mark kept as written, fenced saves that see it, and a refreshed pair that a failed
// save does not lose.

// testSpendMark: the mark and the refresh token's issue time come back as saved, and SaveIf
// compares the mark too: a save over a pair someone has marked fails, and of replicas racing to
// mark one pair exactly one does.
func testSpendMark(t *testing.T, open Open) {
	connect := open(t)
	store := connect(t)
	cs := implements[twitchoauth.ConditionalSaver](t, store)
	ctx := t.Context()
	issued := time.Date(2026, 11, 1, 2, 3, 4, 0, time.UTC)
	plain := &twitchoauth.StoredToken{AccessToken: "acc", RefreshToken: "ref", UserID: "1", RefreshIssuedAt: issued}
	if err := store.Save(ctx, "m", plain); err != nil {
		t.Fatal(err)
	}
	mark := func(holder string) *twitchoauth.StoredToken {
		st := *plain
		st.Spending = &twitchoauth.SpendMark{Refresh: "0f" + holder, At: time.Now().UTC().Round(0), Holder: holder}
		return &st
	}
	mine := mark("a")
	if err := cs.SaveIf(ctx, "m", plain, mine); err != nil {
		t.Fatalf("mark: %v", err)
	}
	got, err := connect(t).Load(ctx, "m")
	if err != nil || got.Spending == nil || got.Spending.Holder != "a" || got.Spending.Refresh != mine.Spending.Refresh ||
		!got.Spending.At.Equal(mine.Spending.At) || !got.RefreshIssuedAt.Equal(issued) {
		t.Fatalf("Load = %+v, %v; want the mark and the issue time as saved", got, err)
	}
	// A save that read the pair before it was marked must not wipe the mark.
	if err := cs.SaveIf(ctx, "m", plain, mark("b")); !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("SaveIf over another's mark: %v, want ErrTokenChanged", err)
	}
	// The mark's holder replaces it.
	if err := cs.SaveIf(ctx, "m", mine, plain); err != nil {
		t.Errorf("SaveIf by the mark's holder: %v", err)
	}
	// Replicas race to mark the pair: one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		replica := connect(t).(twitchoauth.ConditionalSaver)
		wg.Go(func() {
			if err := replica.SaveIf(ctx, "m", plain, mark(string(rune('c'+i)))); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, twitchoauth.ErrTokenChanged) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("%d replicas marked the pair, want 1", n)
	}
}

// testMarkedByAnother: a public client's token that another holder marked as being spent, and
// whose new pair never came (the holder died), is not refreshed: the source fails with the doubt,
// sends nothing, and the stored record stays.
func testMarkedByAnother(t *testing.T, open Open) {
	connect := open(t)
	c, fake := PublicTwitch(t)
	store := connect(t)
	held := seedFor(t, store, fake, c.ClientID, faketwitch.UserID, "marked", true)
	st, err := store.Load(t.Context(), "marked")
	if err != nil {
		t.Fatal(err)
	}
	// Marked an hour ago by a process that is gone: the wait for it is over at once.
	st.Spending = &twitchoauth.SpendMark{Refresh: twitchoauth.RefreshTokenHash(held.RefreshToken),
		At: time.Now().Add(-time.Hour).UTC(), Holder: "dead-process-1"}
	if err := store.Save(t.Context(), "marked", st); err != nil {
		t.Fatal(err)
	}
	src := twitchoauth.NewStoreTokenSource(c, connect(t), "marked", held)
	_, err = src.Token()
	if !errors.Is(err, twitchoauth.ErrRefreshInDoubt) || !errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		t.Errorf("Token() = %v, want a RefreshInDoubtError", err)
	}
	if n := fake.CountGrant("refresh_token"); n != 0 {
		t.Errorf("%d refresh requests, want none", n)
	}
	if got, err := connect(t).Load(t.Context(), "marked"); err != nil || got.RefreshToken != held.RefreshToken || got.Spending == nil {
		t.Errorf("stored %v, %v; want the record kept with its mark", accessOf(got), err)
	}
}

// failRefreshed is a store whose saves of a refreshed pair (in place of a marked one) fail while
// failing is above zero.
type failRefreshed struct {
	twitchoauth.TokenStore
	cs      twitchoauth.ConditionalSaver
	failing atomic.Int32
}

func (f *failRefreshed) SaveIf(ctx context.Context, key string, prev, next *twitchoauth.StoredToken) error {
	if prev.Spending != nil && next.Spending == nil && f.failing.Add(-1) >= 0 {
		return errors.New("storetest: the store went away")
	}
	return f.cs.SaveIf(ctx, key, prev, next)
}

// testPendingPair: the store fails to take the pair a public client's refresh got. The source
// keeps it, uses it, and stores it at FlushPending; another replica meanwhile sends nothing.
func testPendingPair(t *testing.T, open Open) {
	connect := open(t)
	base := connect(t)
	cs := implements[twitchoauth.ConditionalSaver](t, base)
	c, fake := PublicTwitch(t)
	held := seedFor(t, base, fake, c.ClientID, faketwitch.UserID, "pending", true)
	flaky := &failRefreshed{TokenStore: base, cs: cs}
	flaky.failing.Store(1)
	var store twitchoauth.TokenStore = struct {
		twitchoauth.TokenStore
		twitchoauth.ConditionalSaver
	}{flaky, flaky}
	if ll, ok := base.(twitchoauth.LeaseLocker); ok {
		store = compose(flaky, ll, flaky)
	}
	src := twitchoauth.NewStoreTokenSource(c, store, "pending", held)
	tok, err := src.Token()
	if err != nil || tok.AccessToken == held.AccessToken || !src.Pending() {
		t.Fatalf("Token() = %v, %v, pending %v; want the new token, kept pending", accessOf(tok), err, src.Pending())
	}
	// Another replica that finds the mark sends nothing (within a short wait).
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := twitchoauth.NewStoreTokenSource(c, connect(t), "pending", held).TokenContext(ctx); err == nil {
		t.Error("another replica got a token while the pair was pending")
	}
	if err := src.FlushPending(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := connect(t).Load(t.Context(), "pending")
	if err != nil || got.AccessToken != tok.AccessToken || got.RefreshToken != tok.RefreshToken || got.Spending != nil {
		t.Fatalf("stored %v, %v; want the pending pair, unmarked", accessOf(got), err)
	}
	if n, r := fake.CountGrant("refresh_token"), fake.ReusedRefreshTokens(); n != 1 || r != 0 {
		t.Errorf("%d refreshes, %d refresh tokens sent twice; want 1, 0", n, r)
	}
}
