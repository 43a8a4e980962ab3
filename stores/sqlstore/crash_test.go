package sqlstore

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// Environment of the process TestPostgresKillAfterRefreshBeforeSave kills.
const (
	envKillDSN    = "SQLSTORE_TEST_KILL_DSN"
	envKillPrefix = "SQLSTORE_TEST_KILL_PREFIX"
	envKillTwitch = "SQLSTORE_TEST_KILL_TWITCH"
)

// TestPostgresKillAfterRefreshBeforeSave: a process refreshing a public client's token through
// PostgreSQL, with the default lock ttl, is killed (SIGKILL) after Twitch answered and before it
// stored the new pair: the tokens row holds the old pair with the dead process's spending mark,
// and the locks row outlives the process until its lease ends (two minutes). The next process
// (another holder, with the default lock ttl too) must not send the spent refresh token: it looks
// at the mark while it waits for the lock, and fails with an error that Is ErrRefreshInDoubt (and
// ErrInvalidRefreshToken), not a lease or context error, within the mark's bound (35 s after the
// mark), whatever the lock's lease; and it leaves the row as it is, mark and all.
func TestPostgresKillAfterRefreshBeforeSave(t *testing.T) {
	if dsn := os.Getenv(envKillDSN); dsn != "" {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s := New(db, Postgres)
		s.Prefix = os.Getenv(envKillPrefix)
		storetest.KillChild(t, s, "9000", os.Getenv(envKillTwitch))
		return
	}
	t.Parallel()
	srv := needPostgres(t)
	c, fake := storetest.PublicTwitch(t)
	storetest.LogLibrary(t, c)
	prefix := uniquePrefix()
	store := pgStore(t, srv, prefix)
	const user = "9000"
	access := storetest.SeedPublic(t, store, fake, []string{user}, 50*time.Second, time.Now().Add(-time.Minute))
	old, err := store.Load(t.Context(), user)
	if err != nil {
		t.Fatal(err)
	}
	// This process's source, bound while the token still validated: it refreshes at first use.
	next := storetest.BindSources(t, c, pgStore(t, srv, prefix), []string{user}, 0)[0]
	storetest.ExpireAccess(fake, access)
	fake.ResetRequests()

	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestPostgresKillAfterRefreshBeforeSave$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"=1", envKillDSN+"="+srv.DSN("postgres", "sqlstore-killed"),
		envKillPrefix+"="+prefix, envKillTwitch+"="+fake.BaseURL())
	storetest.KillAtSave(t, ctx, cmd)
	if holder, left := lockRow(t, store, user); holder == "" || left < time.Minute {
		t.Fatalf("the dead process's lock row has %v left (holder %q); want most of the default lease", left, holder)
	}
	storetest.WantDecidedWithinBound(t, ctx, fake, store, next, user, old)
}
