package twitchoauth

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// TestRenewalTurnsGivenBackWhileWaiting: a registry's renewals take turns, and one that waits for
// another holder (its mark on the refresh token, or the key's lock) gives its turn back meanwhile,
// so that the users behind it are refreshed at once instead of after the wait.
func TestRenewalTurnsGivenBackWhileWaiting(t *testing.T) {
	for _, wait := range []string{"mark", "lock"} {
		t.Run(wait, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := publicBubble(t)
				seedExpired(t, b.fake, b.store, "waits", "behind")
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
				waiting := make(chan error, 1)
				go func() {
					src, _ := u.Source("waits")
					_, err := src.Token()
					waiting <- err
				}()
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
				if wait == "lock" && err != nil {
					t.Errorf("the renewal that waited for the lock: %v", err)
				}
			})
		})
	}
}
