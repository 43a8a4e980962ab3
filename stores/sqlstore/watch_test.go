package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// The store suite's Watch case (TestSuite) shows that saves, fenced saves and deletes through one
// replica reach another's watch, on both dialects. This file fails the watch's connection, checks
// what it leaves in the pool, and measures how soon a change arrives.

// watchToken is a token for the watch tests, whose contents do not matter.
func watchToken(i int) *twitchoauth.StoredToken {
	return &twitchoauth.StoredToken{AccessToken: fmt.Sprintf("a%d", i), RefreshToken: fmt.Sprintf("r%d", i), UserID: "1"}
}

// mustSave saves a token under key, failing the test if it cannot.
func mustSave(t testing.TB, ctx context.Context, s *Store, key string) {
	t.Helper()
	if err := s.Save(ctx, key, watchToken(0)); err != nil {
		t.Fatalf("save %s: %v", key, err)
	}
}

// listenBackends returns the backend IDs of the connections of application app that last ran a
// LISTEN, as pg_stat_activity shows them.
func listenBackends(t testing.TB, ctx context.Context, admin *sql.DB, app string) []int {
	t.Helper()
	rows, err := admin.QueryContext(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE 'LISTEN %' ORDER BY pid", app)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		if err := rows.Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return pids
}

// TestWatchTerminated: the watch's LISTEN backend is killed (pg_terminate_backend) while it runs.
// A change made meanwhile is followed by changed("") once it listens again, on a new backend, and
// a change made after is reported as before.
func TestWatchTerminated(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	prefix := uniquePrefix()
	app := fmt.Sprintf("watcher-%d", serial.Add(1))
	a := New(pgDB(t, srv, app), Postgres)
	a.Prefix = prefix
	b := pgStore(t, srv, prefix)
	admin := pgDB(t, srv, "sqlstore-admin")

	w := storetest.Watch(t, a)
	mustSave(t, ctx, b, "before")
	w.Want(t, "before")
	pids := listenBackends(t, ctx, admin, app)
	if len(pids) != 1 {
		t.Fatalf("%d LISTEN backends of the watch, want 1", len(pids))
	}
	var killed bool
	if err := admin.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", pids[0]).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend: %v, %v", killed, err)
	}
	mustSave(t, ctx, b, "meanwhile")
	w.Want(t, "")
	// The caller looks again at every key, and so finds the change made meanwhile.
	if _, err := a.Load(ctx, "meanwhile"); err != nil {
		t.Fatalf("load after the watch came back: %v", err)
	}
	mustSave(t, ctx, b, "after")
	w.Want(t, "after")
	if again := listenBackends(t, ctx, admin, app); len(again) != 1 || again[0] == pids[0] {
		t.Errorf("LISTEN backends after the first was killed: %v; want one, not %d", again, pids[0])
	}
}

// TestWatchServerRestart: PostgreSQL (a server of this test's own) is stopped at once, as a crash
// would stop it, and started again while a watch runs. The watch does not end: it connects again
// once the server is back, says so with changed(""), and reports the changes made after.
func TestWatchServerRestart(t *testing.T) {
	t.Parallel()
	needPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	srv, err := startPostgres()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	prefix := uniquePrefix()
	a, b := pgStore(t, srv, prefix), pgStore(t, srv, prefix)
	w := storetest.Watch(t, a)
	mustSave(t, ctx, b, "before")
	w.Want(t, "before")
	if err := srv.Stop("immediate"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start PostgreSQL again on the same port and files: %v", err)
	}
	w.Want(t, "")
	// A new replica, whose pool holds no connection from before the crash, writes.
	mustSave(t, ctx, pgStore(t, srv, prefix), "after")
	w.Want(t, "after")
}

// TestWatchGivesConnectionBack: once a watch ends, its connection is back in the pool (a pool of
// one connection here), no longer listening, and the notifications sent since are not held for it.
func TestWatchGivesConnectionBack(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	prefix := uniquePrefix()
	app := fmt.Sprintf("watcher-%d", serial.Add(1))
	db := pgDB(t, srv, app)
	db.SetMaxOpenConns(1)
	a := New(db, Postgres)
	a.Prefix = prefix
	b := pgStore(t, srv, prefix)

	w := storetest.Watch(t, a)
	mustSave(t, ctx, b, "k")
	w.Want(t, "k")
	pids := listenBackends(t, ctx, pgDB(t, srv, "sqlstore-admin"), app)
	if len(pids) != 1 {
		t.Fatalf("%d LISTEN backends of the watch, want 1", len(pids))
	}
	if err := w.Stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("WatchChanges returned %v once its context ended; want context.Canceled", err)
	}
	mustSave(t, ctx, b, "k")
	var pid, listening int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid(), (SELECT count(*) FROM pg_listening_channels())").Scan(&pid, &listening); err != nil {
		t.Fatal(err)
	}
	if pid != pids[0] {
		t.Errorf("the pool's connection is backend %d, not the watch's %d: it was not given back", pid, pids[0])
	}
	if listening != 0 {
		t.Errorf("the connection given back still listens on %d channels", listening)
	}
}

// TestWatchRefused: a watch that cannot work as the Store is set up returns at once, saying why,
// and never calls changed: a PostgreSQL Store whose DB is not pgx's, an in-memory SQLite
// database, a closed DB.
func TestWatchRefused(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), storetest.WatchTimeout)
	defer cancel()
	notPgx, err := sql.Open("sqlite", sqliteFile(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { notPgx.Close() })
	memory, err := Open(ctx, SQLite, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { memory.Close() })
	closed := sqliteStore(t, sqliteFile(t))
	closed.DB.Close()
	for _, tc := range []struct {
		name string
		s    *Store
		want string
	}{
		{"NotPgx", New(notPgx, Postgres), "LISTEN needs the pgx driver"},
		{"InMemory", memory, "in-memory SQLite database cannot be watched"},
		{"Closed", closed, "closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.WatchChanges(ctx, func(key string) { t.Errorf("changed(%q) called", key) })
			if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WatchChanges: %v; want an error that says %q, at once", err, tc.want)
			}
		})
	}
	// The in-memory database's one connection is free again.
	mustSave(t, ctx, memory, "k")
}

// TestWatchLongKey: on PostgreSQL, a key too long for a notification's payload (8,000 bytes or
// more; the primary key index takes it, compressed) is saved, and reported as "": look at
// everything.
func TestWatchLongKey(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	prefix := uniquePrefix()
	a, b := pgStore(t, srv, prefix), pgStore(t, srv, prefix)
	w := storetest.Watch(t, a)
	for _, n := range []int{maxNotifyKey, maxNotifyKey + 1} {
		key := strings.Repeat("k", n)
		mustSave(t, ctx, b, key)
		if n <= maxNotifyKey {
			w.Want(t, key)
		} else {
			w.Want(t, "")
		}
	}
}

// TestWatchSQLiteRowReplaced: on SQLite, a row deleted and saved anew between two polls, its
// version back at 1 and its rowid the same (it was the last row), is reported: its updated_at
// differs.
func TestWatchSQLiteRowReplaced(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	path := sqliteFile(t)
	a, b := sqliteStore(t, path), sqliteStore(t, path)
	w := storetest.Watch(t, a)
	if _, err := b.Keys(ctx); err != nil { // the tables
		t.Fatal(err)
	}
	q := b.q.Load()
	token, _, _, err := b.encode("k", watchToken(1))
	if err != nil {
		t.Fatal(err)
	}
	var before, after stamp
	// Each step in one transaction, so that no poll falls within it: the row saved, written
	// earlier by its updated_at; then deleted and saved anew.
	inTx(t, ctx, b.DB, func(tx *sql.Tx) {
		if _, err := tx.ExecContext(ctx, q.save, "k", token, nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE twitchoauth_tokens SET updated_at = '2000-01-01T00:00:00.000Z' WHERE key = 'k'"); err != nil {
			t.Fatal(err)
		}
		before = stampOf(t, ctx, tx, "k")
	})
	w.Want(t, "k")
	inTx(t, ctx, b.DB, func(tx *sql.Tx) {
		if _, err := tx.ExecContext(ctx, q.delete, "k"); err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, q.save, "k", token, nil, nil); err != nil {
			t.Fatal(err)
		}
		after = stampOf(t, ctx, tx, "k")
	})
	if before.rowid != after.rowid || before.version != after.version {
		t.Fatalf("the row saved anew has rowid %d and version %d, the deleted one %d and %d: the test shows nothing", after.rowid, after.version, before.rowid, before.version)
	}
	w.Want(t, "k")
}

// inTx runs f in a transaction of db, and commits it.
func inTx(t testing.TB, ctx context.Context, db *sql.DB, f func(tx *sql.Tx)) {
	t.Helper()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	f(tx)
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// stampOf returns the stamp of key's row in an SQLite tokens table of the default prefix.
func stampOf(t testing.TB, ctx context.Context, tx *sql.Tx, key string) stamp {
	t.Helper()
	var st stamp
	if err := tx.QueryRowContext(ctx, "SELECT rowid, version, updated_at FROM twitchoauth_tokens WHERE key = $1", key).Scan(&st.rowid, &st.version, &st.updatedAt); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestStamps: the keys an SQLite watch reports from each read of the rows' stamps.
func TestStamps(t *testing.T) {
	type row struct {
		key            string
		rowid, version int64
		at             string
	}
	reads := []struct {
		name string
		rows []row
		want []string
	}{
		{"First", []row{{"c", 3, 1, "t1"}, {"a", 1, 1, "t1"}}, []string{"a", "c"}},
		{"Same", []row{{"a", 1, 1, "t1"}, {"c", 3, 1, "t1"}}, nil},
		{"Saved", []row{{"a", 1, 2, "t2"}, {"c", 3, 1, "t1"}}, []string{"a"}},
		{"Added", []row{{"a", 1, 2, "t2"}, {"b", 4, 1, "t3"}, {"c", 3, 1, "t1"}}, []string{"b"}},
		{"Deleted", []row{{"a", 1, 2, "t2"}, {"b", 4, 1, "t3"}}, []string{"c"}},
		{"ReplacedNewRowid", []row{{"a", 5, 1, "t2"}, {"b", 4, 1, "t3"}}, []string{"a"}},
		{"ReplacedLater", []row{{"a", 5, 1, "t2"}, {"b", 4, 1, "t4"}}, []string{"b"}},
		{"InKeyOrder", []row{{"d", 6, 1, "t5"}, {"b", 4, 1, "t4"}}, []string{"a", "d"}},
		{"AllGone", nil, []string{"b", "d"}},
		{"Back", []row{{"b", 4, 1, "t4"}}, []string{"b"}},
	}
	var ss stamps
	for _, r := range reads {
		ss.begin()
		var got []string
		for _, row := range r.rows {
			if ss.see([]byte(row.key), row.rowid, row.version, []byte(row.at)) {
				got = append(got, row.key)
			}
		}
		got = append(got, ss.end()...)
		slices.Sort(got)
		if !slices.Equal(got, r.want) {
			t.Errorf("%s: reported %q, want %q", r.name, got, r.want)
		}
	}
}

// latencySaves is how many saves TestWatchLatency times; latencyUsers how many other users the
// table holds meanwhile (an SQLite watch reads every row's stamp when the file changed).
const (
	latencySaves = 1000
	latencyUsers = 10000
)

// TestWatchLatency times, for each of 1,000 saves of new keys by one replica, one after another,
// how long from the start of the Save until another replica's watch reports its key, with 10,000
// other users in the table, and logs the median and the 99th percentile. Every key must be
// reported; the times are logged, and bounded only loosely (a second on PostgreSQL, two on SQLite,
// whose watch polls), so that the test holds on a loaded machine.
func TestWatchLatency(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
		defer cancel()
		connect := open(t)
		a, b := connect(t), connect(t)
		seedUsers(t, ctx, b, latencyUsers)

		var mu sync.Mutex
		reported := make(map[string]time.Time, latencySaves)
		watching, all := make(chan struct{}), make(chan struct{})
		watchCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			first := true
			done <- a.WatchChanges(watchCtx, func(key string) {
				now := time.Now()
				if first {
					first = false
					close(watching)
				}
				if !strings.HasPrefix(key, "lat-") {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if _, ok := reported[key]; !ok {
					reported[key] = now
					if len(reported) == latencySaves {
						close(all)
					}
				}
			})
		}()
		defer func() {
			stop()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("WatchChanges returned %v once its context ended", err)
			}
		}()
		select {
		case <-watching:
		case err := <-done:
			t.Fatalf("WatchChanges returned %v before it watched", err)
		}

		started := make([]time.Time, latencySaves)
		saveTimes := make([]time.Duration, latencySaves)
		for i := range latencySaves {
			started[i] = time.Now()
			mustSave(t, ctx, b, fmt.Sprintf("lat-%d", i))
			saveTimes[i] = time.Since(started[i])
		}
		select {
		case <-all:
		case <-time.After(storetest.WatchTimeout):
			mu.Lock()
			n := len(reported)
			mu.Unlock()
			t.Fatalf("%d of %d saves reported within %v of the last", n, latencySaves, storetest.WatchTimeout)
		}
		mu.Lock()
		delays := make([]time.Duration, latencySaves)
		for i := range latencySaves {
			delays[i] = reported[fmt.Sprintf("lat-%d", i)].Sub(started[i])
		}
		mu.Unlock()
		slices.Sort(delays)
		slices.Sort(saveTimes)
		pct := func(d []time.Duration, p int) time.Duration {
			return d[(len(d)*p+99)/100-1].Round(10 * time.Microsecond)
		}
		t.Logf("%v: from the start of a Save to another replica's changed(key), over %d saves with %d other users stored: p50 %v, p99 %v, max %v (the Save itself: p50 %v, p99 %v)",
			b.Dialect, latencySaves, latencyUsers, pct(delays, 50), pct(delays, 99), delays[len(delays)-1].Round(10*time.Microsecond), pct(saveTimes, 50), pct(saveTimes, 99))
		if b.Dialect == SQLite {
			conn, err := b.DB.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var ss stamps
			var took [2]time.Duration
			for i := range took { // the first read finds every row new; the second, none
				start := time.Now()
				if _, err := ss.readAll(ctx, conn, b.q.Load().stamps); err != nil {
					t.Fatal(err)
				}
				took[i] = time.Since(start)
			}
			t.Logf("SQLite: a read of the stamps of %d rows, as a poll that finds the file changed does: %v (%v the first, which finds every row new)",
				len(ss.rows), took[1].Round(10*time.Microsecond), took[0].Round(10*time.Microsecond))
		}
		bound := map[Dialect]time.Duration{Postgres: time.Second, SQLite: 2 * time.Second}[b.Dialect]
		if p99 := pct(delays, 99); p99 > bound {
			t.Errorf("p99 %v, more than %v", p99, bound)
		}
	})
}

// seedUsers stores n users, in one transaction, before the test's own.
func seedUsers(t testing.TB, ctx context.Context, s *Store, n int) {
	t.Helper()
	if _, err := s.Keys(ctx); err != nil { // the tables
		t.Fatal(err)
	}
	q := s.q.Load()
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for i := range n {
		key := fmt.Sprintf("user-%d", i)
		token, sealed, keyID, err := s.encode(key, watchToken(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, q.save, key, token, sealed, keyID); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}
