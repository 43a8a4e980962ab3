package redisstore

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestKillAfterRefreshBeforeSave: a process refreshing a public client's token through Redis,
// with the default lock ttl, is killed (SIGKILL) after Twitch answered and before it stored the
// new pair: Redis holds the old pair with the dead process's spending mark, and a lock that only
// its lease (two minutes) ends. The next process (another holder, with the default lock ttl too)
// must not send the spent refresh token: it looks at the mark while it waits for the lock, and
// fails with an error that Is ErrRefreshInDoubt (and ErrInvalidRefreshToken), not a lease or
// context error, within the mark's bound (35 s after the mark), whatever the lock's lease; and
// it leaves the record in Redis as it is, mark and all.
func TestKillAfterRefreshBeforeSave(t *testing.T) {
	if addr := os.Getenv("REDISSTORE_KILL_CHILD_REDIS"); addr != "" {
		storetest.KillChild(t, New(newClient(t, addr)), "9000", os.Getenv("REDISSTORE_KILL_CHILD_TWITCH"))
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
	next := storetest.BindSources(t, c, New(newClient(t, srv.Addr)), []string{user}, 0)[0]
	storetest.ExpireAccess(fake, access)
	fake.ResetRequests()

	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillAfterRefreshBeforeSave$", "-test.count=1")
	cmd.Env = append(os.Environ(), "REDISSTORE_KILL_CHILD_REDIS="+srv.Addr, "REDISSTORE_KILL_CHILD_TWITCH="+fake.BaseURL())
	storetest.KillAtSave(t, ctx, cmd)
	if ttl, err := store.Client.PTTL(ctx, store.lockKey(user)).Result(); err != nil || ttl < time.Minute {
		t.Fatalf("the dead process's lock lives %v more (%v); want most of the default lease", ttl, err)
	}
	storetest.WantDecidedWithinBound(t, ctx, fake, store, next, user, old)
}
