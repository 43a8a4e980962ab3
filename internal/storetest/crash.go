package storetest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// A holder killed between Twitch's answer and the save of the new pair: the child process that is
// killed, and what the next process must do, on a store shared by replicas whose lock outlives its
// holder (a lock row or key, until its lease ends).

// SharedStore is a store made for replicas: it has every optional interface.
type SharedStore interface {
	twitchoauth.TokenStore
	twitchoauth.LeaseLocker
	twitchoauth.ConditionalSaver
	twitchoauth.KeyLister
}

// Shared returns store as a SharedStore, failing the test when it lacks an optional interface.
func Shared(t testing.TB, store twitchoauth.TokenStore) SharedStore {
	t.Helper()
	s, ok := store.(SharedStore)
	if !ok {
		t.Fatalf("%T is not a store for replicas: it lacks LeaseLocker, ConditionalSaver or KeyLister", store)
	}
	return s
}

// blockingSave is a store that, asked to store a refreshed pair in place of a marked one, says
// SAVING on standard output and never returns: the process is killed there.
type blockingSave struct{ SharedStore }

func (b blockingSave) SaveIf(ctx context.Context, key string, prev, next *twitchoauth.StoredToken) error {
	if prev.Spending != nil && next.Spending == nil && next.RefreshToken != prev.RefreshToken {
		fmt.Println("SAVING")
		<-time.After(FaultTimeout) // the parent kills the process long before
		return errors.New("not killed")
	}
	return b.SharedStore.SaveIf(ctx, key, prev, next)
}

// KillChild is the process KillAtSave kills: it binds key's token, which Twitch has expired,
// through store with the default lock ttl, so that Bind refreshes it at the fake whose base URL is
// base, and blocks as it stores the new pair.
func KillChild(t *testing.T, store twitchoauth.TokenStore, key, base string) {
	c := twitchoauth.NewClient(faketwitch.PublicClientID, "")
	c.AuthBaseURL = base
	h := twitchoauth.NewUserAuthenticationStorageHelper(c, Scopes)
	h.Store, h.StoreKey = blockingSave{Shared(t, store)}, key
	h.AuthGenerator = func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
		return nil, errors.New("a login was started")
	}
	_, err := h.Bind(t.Context())
	t.Fatalf("Bind returned (%v); the parent should have killed this process", err)
}

// KillAtSave starts cmd, a child that runs KillChild, and kills it (SIGKILL: no deferred call, no
// unlock) once it says SAVING: Twitch has answered its refresh, and the store holds the old pair
// with the child's mark, and its lock until the lease ends.
func KillAtSave(t *testing.T, ctx context.Context, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	saving := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "SAVING" {
				saving <- true
				return
			}
		}
		saving <- false
	}()
	select {
	case ok := <-saving:
		if !ok {
			t.Fatal("the child ended before it got to store the refreshed pair")
		}
	case <-ctx.Done():
		t.Fatal("the child never got to store the refreshed pair")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
}

// The bounds of a wait for another holder's mark, as the library sets them: a public client's
// refresh is seen to its end for 30 s at most after its mark (refreshBound), and its holder has 5 s
// more to store the new pair (markBound). markSlack is what the test grants a loaded machine.
const (
	refreshBound = 30 * time.Second
	markBound    = refreshBound + 5*time.Second
	markSlack    = 2 * time.Second
)

// WantDecidedWithinBound checks next, the source of user's token in store in the process after
// the one KillAtSave killed, whose refresh of old Twitch answered: its Token fails with the doubt
// (a *RefreshInDoubtError, not a lease or context error of its own), within the mark's bound of the
// mark's time and not before a refresh could have ended, sending nothing, and again at once when
// asked again; the store keeps the old pair with the dead holder's mark.
func WantDecidedWithinBound(t *testing.T, ctx context.Context, fake *faketwitch.Server, store twitchoauth.TokenStore, next *twitchoauth.UserTokenSource, user string, old *twitchoauth.StoredToken) {
	t.Helper()
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Fatalf("%d refreshes before the kill, want the child's 1", n)
	}
	marked, err := store.Load(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if marked.Spending == nil || marked.RefreshToken != old.RefreshToken {
		t.Fatalf("the store holds %+v after the kill; want the old pair with the child's mark", marked)
	}
	_, err = next.TokenContext(ctx)
	took := time.Since(marked.Spending.At)
	t.Logf("the next process's Token decided %v after the dead holder's mark (bound %v): %v", took.Round(time.Millisecond), markBound, err)
	switch {
	case !errors.Is(err, twitchoauth.ErrRefreshInDoubt) || !errors.Is(err, twitchoauth.ErrInvalidRefreshToken):
		t.Errorf("the next process: err = %v, want a RefreshInDoubtError", err)
	case errors.Is(err, twitchoauth.ErrLeaseLost) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		t.Errorf("the next process: err = %v, want the doubt alone, not a lease or context error", err)
	}
	if took > markBound+markSlack || took < refreshBound {
		t.Errorf("the next process decided %v after the mark; want within %v of it (and %v of slack), and no sooner than a refresh may take (%v)", took, markBound, markSlack, refreshBound)
	}
	// Asked again, it answers the same at once, and still sends nothing.
	start := time.Now()
	if _, err := next.TokenContext(ctx); !errors.Is(err, twitchoauth.ErrRefreshInDoubt) {
		t.Errorf("the next process, asked again: err = %v, want the doubt", err)
	} else if d := time.Since(start); d > markSlack {
		t.Errorf("the next process, asked again, took %v", d)
	}
	WantNoReuse(t, fake, 1)
	st, err := store.Load(ctx, user)
	switch {
	case err != nil:
		t.Errorf("the store lost the record: %v", err)
	case st.AccessToken != old.AccessToken || st.RefreshToken != old.RefreshToken:
		t.Error("the store holds another pair than the one the child marked")
	case st.Spending == nil || st.Spending.Holder != marked.Spending.Holder || !st.Spending.At.Equal(marked.Spending.At):
		t.Errorf("the store holds mark %+v, want the child's %+v", st.Spending, marked.Spending)
	case st.Spending.Refresh != twitchoauth.RefreshTokenHash(old.RefreshToken):
		t.Error("the mark names another refresh token than the stored one")
	}
}
