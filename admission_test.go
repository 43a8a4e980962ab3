package twitchoauth

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// tokenLater asks for the token of u's user id in a goroutine of its own, and returns where its
// error comes.
func tokenLater(u *UserTokens, id string) <-chan error {
	done := make(chan error, 1)
	go func() {
		src, err := u.Source(id)
		if err == nil {
			_, err = src.Token()
		}
		done <- err
	}()
	return done
}

// TestRenewalTurnsGivenBackWhileWaiting: a registry's renewals take turns, and one that waits for
// another holder (its mark on the refresh token, or the key's lock) gives its turn back meanwhile,
// so that the users behind it are refreshed at once instead of after the wait.
func TestRenewalTurnsGivenBackWhileWaiting(t *testing.T) {
	for _, wait := range []string{"mark", "lock", "lock, confidential"} {
		t.Run(wait, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := publicBubble(t)
				if wait == "lock, confidential" {
					b = newRunBubble(t) // a client with a secret, which watches for no mark
				}
				seedExpiredFor(t, b.fake, b.store, b.c.ClientID, "waits", "behind")
				if wait == "mark" {
					st := b.store.stored("waits")
					st.Spending = &SpendMark{Refresh: RefreshTokenHash(st.RefreshToken), At: time.Now().UTC(), Holder: "other-1"}
					if err := b.store.Save(t.Context(), "waits", st); err != nil {
						t.Fatal(err)
					}
				} else {
					unlock, err := b.store.Lock(t.Context(), "waits", time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					go func() { // another holder, at work for a minute
						time.Sleep(time.Minute)
						unlock()
					}()
				}
				u := NewUserTokens(b.c, b.store)
				u.turns = make(chan struct{}, 1) // one renewal at work at a time
				if err := u.Sync(t.Context()); err != nil {
					t.Fatal(err)
				}
				waiting := tokenLater(u, "waits")
				synctest.Wait() // it has the turn, and waits for the other holder
				start := time.Now()
				src, _ := u.Source("behind")
				if _, err := src.Token(); err != nil {
					t.Fatal(err)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("the user behind a renewal waiting for another holder's %s was refreshed after %v; want at once", wait, took)
				}
				select {
				case err := <-waiting:
					t.Fatalf("the waiting renewal ended first: %v", err)
				default:
				}
				err := <-waiting
				if wait == "mark" && !errors.Is(err, ErrRefreshInDoubt) {
					t.Errorf("the renewal that waited for a mark never taken back: %v; want the doubt", err)
				}
				if wait != "mark" && err != nil {
					t.Errorf("the renewal that waited for the lock: %v", err)
				}
			})
		})
	}
}

// TestRenewalHoldsNoLockWaitingForTurn: a renewal that gave its turn back while it waited for
// another holder's lock, and is granted the lock when every turn is taken, goes on without a
// turn: queued for one, it would hold the key's lock (and spend its lease) for as long as the
// renewals ahead of it take.
func TestRenewalHoldsNoLockWaitingForTurn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		seedExpiredFor(t, b.fake, b.store, b.c.ClientID, "u")
		unlock, err := b.store.Lock(t.Context(), "u", time.Minute) // another replica's
		if err != nil {
			t.Fatal(err)
		}
		u := NewUserTokens(b.c, b.store)
		u.turns = make(chan struct{}, 2)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		done := tokenLater(u, "u")
		time.Sleep(5 * lockWatchEvery)
		synctest.Wait() // the renewal gave its turn back, and still waits for the lock
		for range cap(u.turns) {
			u.turns <- struct{}{} // other renewals at work, as long as they take
		}
		if err := unlock(); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		stored := b.store.stored("u")
		for range cap(u.turns) {
			<-u.turns
		}
		if err := <-done; err != nil {
			t.Fatalf("the renewal: %v", err)
		}
		if !stored.Expiry.After(time.Now()) {
			t.Error("the renewal was granted the lock, and held it waiting for a turn; want it renewed meanwhile")
		}
	})
}

// TestRenewalTurnGivenBackForSameToken: a caller that finds another caller renewing the same
// token waits for that renewal without a turn, so that a third user's refresh is not held up.
func TestRenewalTurnGivenBackForSameToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		seedStore(t, b.fake, b.store, []string{"slow", "behind"})
		for _, id := range []string{"slow", "behind"} {
			st := b.store.stored(id)
			st.Expiry = time.Now().Add(-time.Minute)
			if err := b.store.Save(t.Context(), id, st); err != nil {
				t.Fatal(err)
			}
		}
		u := NewUserTokens(b.c, b.store)
		u.turns = make(chan struct{}, 2)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 10 * time.Second, Count: 1}) // the first refresh takes 10 s
		slow, _ := u.Source("slow")
		done := make(chan error, 2)
		for range 2 { // the second caller waits for the first's renewal
			go func() {
				_, err := slow.Token()
				done <- err
			}()
			synctest.Wait()
		}
		start := time.Now()
		behind, _ := u.Source("behind")
		if _, err := behind.Token(); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("a user behind a caller waiting for another's renewal of the same token was refreshed after %v; want at once", took)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
}

// TestRenewalTakesTurnToRenewAfterAll: a caller that waited, without a turn, for another caller's
// renewal of the same token, and must renew after all (that caller gave up), takes a turn before
// it renews: the bound on a registry's renewals at work holds.
func TestRenewalTakesTurnToRenewAfterAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		seedExpiredFor(t, b.fake, b.store, b.c.ClientID, "u")
		u := NewUserTokens(b.c, b.store)
		u.turns = make(chan struct{}, 1)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 10 * time.Second, Count: 2})
		src, _ := u.Source("u")
		ctx, cancel := context.WithCancel(t.Context())
		first, second := make(chan error, 1), make(chan error, 1)
		go func() { _, err := src.TokenContext(ctx); first <- err }()
		synctest.Wait() // it renews, holding the turn
		go func() { _, err := src.Token(); second <- err }()
		synctest.Wait() // it waits for the first caller's renewal
		cancel()
		synctest.Wait() // the first caller gave up; the second renews
		if n := len(u.turns); n != 1 {
			t.Errorf("%d turns taken while the second caller renews; want its own", n)
		}
		if err := <-first; !errors.Is(err, context.Canceled) {
			t.Errorf("the caller that gave up: %v", err)
		}
		if err := <-second; err != nil {
			t.Errorf("the caller that renewed after all: %v", err)
		}
	})
}

// TestRenewalTurnNotTakenToFindTokenFresh: a caller that waited for another caller's renewal of
// the same token finds it fresh and returns at once, without queueing for a turn behind other
// users' refreshes.
func TestRenewalTurnNotTakenToFindTokenFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		seedStore(t, b.fake, b.store, []string{"slow", "other"})
		for _, id := range []string{"slow", "other"} {
			st := b.store.stored(id)
			st.Expiry = time.Now().Add(-time.Minute)
			if err := b.store.Save(t.Context(), id, st); err != nil {
				t.Fatal(err)
			}
		}
		u := NewUserTokens(b.c, b.store)
		u.turns = make(chan struct{}, 1)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 10 * time.Second, Count: 1})
		b.fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 20 * time.Second, Count: 1})
		slow, _ := u.Source("slow")
		other, _ := u.Source("other")
		done := make(chan error, 2)
		go func() { _, err := slow.Token(); done <- err }() // renews, 10 s
		synctest.Wait()
		go func() { _, err := other.Token(); done <- err }() // queued for the turn, then 20 s
		synctest.Wait()
		start := time.Now()
		if _, err := slow.Token(); err != nil { // waits for the first caller's renewal
			t.Fatal(err)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("a caller that waited for the renewal of its token returned after %v; want 10s, when that renewal ended", took)
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	})
}
