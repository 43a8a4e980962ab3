package redisstore

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/redis/go-redis/v9"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// crashTTL is the lock ttl of the killed process and of the next one: the dead holder's lock ends
// within it, and the next one waits half of it for the mark to give way.
const crashTTL = 2 * time.Second

// TestKillAfterRefreshBeforeSave: a process refreshing a public client's token through Redis is
// killed (SIGKILL) after Twitch answered and before it stored the new pair: Redis holds the old
// pair with the dead process's spending mark, and a lock that its lease ends. The next process
// (another holder) must not send the spent refresh token: it fails with an error that Is
// ErrRefreshInDoubt (and ErrInvalidRefreshToken), within the lease and the mark's wait, and
// leaves the record in Redis as it is, mark and all.
func TestKillAfterRefreshBeforeSave(t *testing.T) {
	if addr := os.Getenv("REDISSTORE_KILL_CHILD_REDIS"); addr != "" {
		killChild(t, addr, os.Getenv("REDISSTORE_KILL_CHILD_TWITCH"))
		return
	}
	t.Parallel()
	srv, _, _ := startOwnRedis(t, false)
	c, fake := storetest.PublicTwitch(t)
	storetest.LogLibrary(t, c)
	store := New(newClient(t, srv.Addr))
	const user = "9000"
	access := storetest.SeedPublic(t, store, fake, []string{user}, 50*time.Second, time.Now().Add(-time.Minute))
	old, err := store.Load(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	// This process's source, bound while the token still validated: it refreshes at first use.
	next := storetest.BindSources(t, c, New(newClient(t, srv.Addr)), []string{user}, crashTTL)[0]
	storetest.ExpireAccess(fake, access)
	fake.ResetRequests()

	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillAfterRefreshBeforeSave$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REDISSTORE_KILL_CHILD_REDIS="+srv.Addr, "REDISSTORE_KILL_CHILD_TWITCH="+fake.BaseURL())
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
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred call, no unlock
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()
	if n := fake.CountGrant("refresh_token"); n != 1 {
		t.Fatalf("%d refreshes before the kill, want the child's 1", n)
	}
	marked, err := store.Load(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if marked.Spending == nil || marked.RefreshToken != old.RefreshToken {
		t.Fatalf("Redis holds %+v after the kill; want the old pair with the child's mark", marked)
	}

	_, err = next.TokenContext(ctx)
	took := time.Since(killed)
	t.Logf("the next process's Token after %v: %v", took.Round(time.Millisecond), err)
	if !errors.Is(err, twitchoauth.ErrRefreshInDoubt) || !errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		t.Errorf("the next process: err = %v, want a RefreshInDoubtError", err)
	}
	if took > 2*crashTTL+time.Second {
		t.Errorf("the next process answered after %v; the lease and the mark's wait are %v at most", took, crashTTL+crashTTL/2)
	}
	// Asked again, it still sends nothing.
	if _, err := next.TokenContext(ctx); !errors.Is(err, twitchoauth.ErrRefreshInDoubt) {
		t.Errorf("the next process, asked again: err = %v, want the doubt", err)
	}
	storetest.WantNoReuse(t, fake, 1)
	st, err := store.Load(ctx, user)
	switch {
	case err != nil:
		t.Errorf("Redis lost the record: %v", err)
	case st.AccessToken != old.AccessToken || st.RefreshToken != old.RefreshToken:
		t.Error("Redis holds another pair than the one the child marked")
	case st.Spending == nil || *st.Spending != *marked.Spending:
		t.Errorf("Redis holds mark %+v, want the child's %+v", st.Spending, marked.Spending)
	case st.Spending.Refresh != sha256Hex(old.RefreshToken):
		t.Error("the mark names another refresh token than the stored one")
	}
}

// sha256Hex is how a mark names a refresh token.
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// blockingSave is a Store that, asked to store a refreshed pair in place of a marked one, says
// SAVING on standard output and never returns: the process is killed there.
type blockingSave struct{ *Store }

func (b blockingSave) SaveIf(ctx context.Context, key string, prev, next *twitchoauth.StoredToken) error {
	if prev.Spending != nil && next.Spending == nil && next.RefreshToken != prev.RefreshToken {
		fmt.Println("SAVING")
		<-time.After(storetest.FaultTimeout) // the parent kills the process long before
		return errors.New("not killed")
	}
	return b.Store.SaveIf(ctx, key, prev, next)
}

// killChild is the process that is killed: it binds the user's token, which Twitch has expired,
// through Redis at addr, so that Bind refreshes it, and blocks when it stores the new pair.
func killChild(t *testing.T, addr, base string) {
	c := twitchoauth.NewClient(faketwitch.PublicClientID, "")
	c.AuthBaseURL = base
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	h := twitchoauth.NewUserAuthenticationStorageHelper(c, storetest.Scopes)
	h.Store, h.StoreKey, h.LockTTL = blockingSave{New(rdb)}, "9000", crashTTL
	h.AuthGenerator = func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
		return nil, errors.New("a login was started")
	}
	_, err := h.Bind(t.Context())
	t.Fatalf("Bind returned (%v); the parent should have killed this process", err)
}
