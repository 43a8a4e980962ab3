package sqlstore

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// This file fails the databases for real under a public client's refreshes (its refresh tokens
// work once: one sent twice ends the user's grant at the fake, as at Twitch): PostgreSQL stopped
// at once (pg_ctl stop -m immediate) while refreshes are in flight, and started again; a
// replica's connections killed with pg_terminate_backend while it holds a lease; an SQLite file
// locked by another process. None may lose a user, send a refresh token twice, or leave a user
// without a working token once the database is back, and while it is gone every operation fails
// promptly with an error that says why.

// promptly is how long an operation on a database that is gone may take before the test calls it
// a hang.
const promptly = 5 * time.Second

// TestTerminateBackendWhileLeaseHeld: a replica's connections are killed (pg_terminate_backend)
// while it holds a lease: the lock is a row, not a session's advisory lock, so it outlives them;
// no other replica takes it; the holder renews it on new connections and releases it. Then the
// same while the holder's refresh is in flight, with another replica waiting for the lock: one
// refresh, no refresh token twice, both replicas end with the stored pair.
func TestTerminateBackendWhileLeaseHeld(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	prefix := uniquePrefix()
	n := serial.Add(1)
	appA, appB := fmt.Sprintf("replica-a-%d", n), fmt.Sprintf("replica-b-%d", n)
	newStore := func(app string) *Store {
		s := New(pgDB(t, srv, app), Postgres)
		s.Prefix = prefix
		return s
	}
	a, b := newStore(appA), newStore(appB)

	t.Run("Lease", func(t *testing.T) {
		lease, err := a.LockLease(ctx, "lease", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if killed := terminate(t, srv, appA); killed == 0 {
			t.Fatal("the holder had no connection to kill")
		}
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		if _, err := b.Lock(short, "lease", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("another replica's Lock after the holder's connections died: %v; want it to wait", err)
		}
		// A renewal on a dead connection fails as a passing failure, never as a lost lease; the
		// pool replaces the connection, and the next renewal works.
		renewed := false
		for try := 1; try <= 10 && !renewed; try++ {
			switch err := lease.Renew(ctx); {
			case err == nil:
				renewed = true
			case errors.Is(err, twitchoauth.ErrLeaseLost):
				t.Fatalf("renewal %d: %v; the lease was not lost", try, err)
			default:
				t.Logf("renewal %d on a dead connection: %v", try, err)
			}
		}
		if !renewed {
			t.Fatal("no renewal worked after the connections were replaced")
		}
		if err := lease.Unlock(); err != nil {
			t.Fatal(err)
		}
		got, cancel2 := context.WithTimeout(ctx, 5*time.Second)
		defer cancel2()
		unlock, err := b.Lock(got, "lease", time.Minute)
		if err != nil {
			t.Fatalf("Lock after the holder released it: %v", err)
		}
		unlock()
	})

	t.Run("Refresh", func(t *testing.T) {
		c, fake := storetest.PublicTwitch(t)
		storetest.LogLibrary(t, c)
		const ttl = time.Second
		old := storetest.SeedPublic(t, a, fake, []string{"8000"}, 0, time.Now().Add(4*time.Hour))[0]
		srcA := storetest.BindSources(t, c, a, []string{"8000"}, ttl)[0]
		srcB := storetest.BindSources(t, c, b, []string{"8000"}, ttl)[0]
		fake.ResetRequests()
		// Twitch answers after the lease's ttl and more: A renews it meanwhile, on new connections.
		fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 5 * ttl / 2})
		type result struct {
			tok *oauth2.Token
			err error
		}
		doneA, doneB := make(chan result, 1), make(chan result, 1)
		go func() {
			tok, err := srcA.ForceRefresh(ctx, nil)
			doneA <- result{tok, err}
		}()
		storetest.WaitUntil(t, ctx, "A's refresh in flight", func() bool { return fake.CountGrant("refresh_token") == 1 })
		killed := terminate(t, srv, appA)
		t.Logf("killed %d connections of the holder", killed)
		go func() {
			tok, err := srcB.ForceRefresh(ctx, nil)
			doneB <- result{tok, err}
		}()
		ra, rb := <-doneA, <-doneB
		if ra.err != nil || rb.err != nil {
			t.Fatalf("A: %v; B: %v", ra.err, rb.err)
		}
		if ra.tok.AccessToken == old || rb.tok.AccessToken != ra.tok.AccessToken || srcA.Pending() {
			t.Errorf("A holds %q (pending %v), B %q, the old token was %q; want both on A's new one", ra.tok.AccessToken, srcA.Pending(), rb.tok.AccessToken, old)
		}
		storetest.WantStored(t, ctx, b, []string{"8000"}, map[string]string{"8000": ra.tok.AccessToken})
		storetest.WantNoReuse(t, fake, 1)
		storetest.WantWorking(t, ctx, c, fake, b, []string{"8000"})
	})
}

// Environment of the process that locks an SQLite file.
const envLockFile = "SQLSTORE_TEST_LOCK_FILE"

// lockSQLite starts a process that takes the SQLite file at path's write lock (BEGIN EXCLUSIVE)
// and holds it until release is called (or the test ends).
func lockSQLite(t *testing.T, ctx context.Context, path string) (release func()) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSQLiteLockedByAnotherProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envChild+"=1", envLockFile+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	release = sync.OnceFunc(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("the locking process: %v", err)
		}
	})
	t.Cleanup(release)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "LOCKED\n" {
		t.Fatalf("the locking process said %q, %v; want LOCKED", line, err)
	}
	return release
}

// lockChild is the process lockSQLite starts.
func lockChild(t *testing.T, path string) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	fmt.Println("LOCKED")
	io.Copy(io.Discard, os.Stdin) // until the parent releases it (or dies)
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
}

// TestSQLiteLockedByAnotherProcess: another process holds the SQLite file's write lock.
//   - Shorter than BusyTimeout: a write waits for it, then succeeds.
//   - Longer: writes and Lock fail after BusyTimeout, saying the database is locked (reads go on:
//     the file is in WAL mode); a public client's refresh that Twitch answers meanwhile keeps its
//     new pair in memory and stores it once the lock is gone; nothing is sent twice, and the
//     stored pair is the one Twitch issued last.
func TestSQLiteLockedByAnotherProcess(t *testing.T) {
	if path := os.Getenv(envLockFile); path != "" {
		lockChild(t, path)
		return
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	path := sqliteFile(t)

	t.Run("Short", func(t *testing.T) {
		s := sqliteStore(t, path)
		if err := s.Save(ctx, "short", &twitchoauth.StoredToken{AccessToken: "a"}); err != nil {
			t.Fatal(err)
		}
		release := lockSQLite(t, ctx, path)
		saved := make(chan error, 1)
		start := time.Now()
		go func() { saved <- s.Save(ctx, "short", &twitchoauth.StoredToken{AccessToken: "b"}) }()
		const held = 300 * time.Millisecond
		time.Sleep(held) // the lock is held this long while the Save waits: a wait is what is tested
		release()
		if err := <-saved; err != nil {
			t.Fatalf("Save across a lock held %v: %v", held, err)
		}
		if took := time.Since(start); took < held {
			t.Errorf("Save took %v while the file was locked for %v", took, held)
		}
		if st, err := s.Load(ctx, "short"); err != nil || st.AccessToken != "b" {
			t.Errorf("after the lock: %+v, %v", st, err)
		}
	})

	t.Run("Long", func(t *testing.T) {
		c, fake := storetest.PublicTwitch(t)
		storetest.LogLibrary(t, c)
		s := sqliteStore(t, path)
		s.BusyTimeout = 500 * time.Millisecond
		old := storetest.SeedPublic(t, s, fake, []string{"9000"}, 0, time.Now().Add(4*time.Hour))[0]
		// The lock's unlock fails while the file is locked: its lease ends it, after ttl.
		const ttl = 3 * time.Second
		src := storetest.BindSources(t, c, s, []string{"9000"}, ttl)[0]
		fake.ResetRequests()
		fake.Fail("token", faketwitch.Fault{Pass: true, Delay: time.Second})
		type result struct {
			tok *oauth2.Token
			err error
		}
		done := make(chan result, 1)
		go func() {
			tok, err := src.ForceRefresh(ctx, nil)
			done <- result{tok, err}
		}()
		storetest.WaitUntil(t, ctx, "the refresh in flight", func() bool { return fake.CountGrant("refresh_token") == 1 })
		release := lockSQLite(t, ctx, path)
		locked := time.Now()
		down := sqliteStore(t, path)
		down.BusyTimeout = 500 * time.Millisecond
		if st, err := down.Load(ctx, "9000"); err != nil || st.Spending == nil {
			t.Errorf("Load while another process holds the write lock: %v, %v; want the marked pair (WAL: reads go on)", st != nil, err)
		}
		checkWrites := func(op string, err error, took time.Duration) {
			t.Helper()
			t.Logf("%s after %v: %v", op, took.Round(time.Millisecond), err)
			if err == nil || !strings.Contains(err.Error(), "sqlstore: ") || !strings.Contains(err.Error(), "database is locked") {
				t.Errorf("%s while another process holds the lock: %v; want sqlstore's context and \"database is locked\"", op, err)
			}
			if took > promptly {
				t.Errorf("%s took %v", op, took)
			}
		}
		start := time.Now()
		err := down.Save(ctx, "other", &twitchoauth.StoredToken{AccessToken: "a"})
		checkWrites("Save", err, time.Since(start))
		start = time.Now()
		_, err = down.Lock(ctx, "other", time.Minute)
		checkWrites("Lock", err, time.Since(start))

		r := <-done // Twitch answered while the file was locked; the save failed
		if r.err != nil || r.tok.AccessToken == old {
			t.Fatalf("ForceRefresh across the lock: %v; want the new pair, kept in memory", r.err)
		}
		if !src.Pending() {
			t.Errorf("the source holds no pending pair, though the file was locked from %v before Twitch answered", time.Since(locked).Round(time.Millisecond))
		}
		release()
		if err := src.FlushPending(ctx); err != nil {
			t.Fatalf("FlushPending after the lock: %v", err)
		}
		storetest.WantStored(t, ctx, s, []string{"9000"}, map[string]string{"9000": r.tok.AccessToken})
		// Another replica's source takes the stored pair up, without a refresh (once the lease of
		// the lock whose unlock failed has ended).
		if tok, err := twitchoauth.NewStoreTokenSource(c, sqliteStore(t, path), "9000", nil).TokenContext(ctx); err != nil || tok.AccessToken != r.tok.AccessToken {
			t.Errorf("another replica after the lock: %v; want the stored pair", err)
		}
		storetest.WantNoReuse(t, fake, 1)
		storetest.WantWorking(t, ctx, c, fake, s, []string{"9000"})
	})
}

// TestPostgresStoppedMidRefresh: PostgreSQL (a server of this test's own) is stopped at once
// (pg_ctl stop -m immediate, as a crash) while 20 users' refreshes are in flight through a
// registry, whose Run lists the store throughout; Twitch's answers come while it is down. Every
// operation fails promptly saying the connection was refused; the sources keep the new pairs in
// memory and store them once PostgreSQL is started again (see storetest.RefreshAcrossOutage). No
// user is deleted, none is reported revoked, no refresh token is sent twice, and every user ends
// with the pair Twitch issued last, in the store and on a replica started afterwards.
func TestPostgresStoppedMidRefresh(t *testing.T) {
	t.Parallel()
	needPostgres(t)
	srv, err := startPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	c, fake := storetest.PublicTwitch(t)
	prefix := uniquePrefix()
	var down *Store
	storetest.RefreshAcrossOutage(t, c, fake, storetest.Outage{
		Server: "PostgreSQL",
		Open: func(t *testing.T) twitchoauth.TokenStore {
			s := pgStore(t, srv, prefix)
			if down == nil {
				down = pgStore(t, srv, prefix) // opened while the server runs, to be checked while it is down
			}
			return s
		},
		Down: func(t *testing.T) {
			if _, err := down.Keys(t.Context()); err != nil { // it knows its tables: what fails is the statement
				t.Fatal(err)
			}
			if err := srv.Stop("immediate"); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 4*promptly)
			defer cancel()
			storetest.WantDown(t, ctx, down, "sqlstore: ", []string{"connection refused", errConnLost.Error()}, promptly)
		},
		Up: func(t *testing.T) {
			if err := srv.Start(); err != nil {
				t.Fatalf("start PostgreSQL again on the same port and files: %v", err)
			}
		},
		TwitchDelay: 1500 * time.Millisecond,
	})
}
