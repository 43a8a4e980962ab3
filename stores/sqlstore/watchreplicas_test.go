package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// Two replicas, each a UserTokens registry running Run over a *sql.DB of its own: what one does
// reaches the other at once (PostgreSQL's LISTEN/NOTIFY; SQLite's watch polls every 100 ms), and
// after the watch was lost, within SyncEvery.

// TestPostgresHearsRefreshAtOnce: 200 users; A refreshes each in turn and B's subscriber is handed
// the token within 100 ms at the 99th percentile; A removes 50, each dropped by B within 100 ms.
func TestPostgresHearsRefreshAtOnce(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	prefix := uniquePrefix()
	storetest.HearsRefreshAtOnce(t, pgStore(t, srv, prefix), pgStore(t, srv, prefix), 200, 50, 100*time.Millisecond)
}

// TestSQLiteHearsRefreshAtOnce: as TestPostgresHearsRefreshAtOnce, over one SQLite file with 50
// users and 20 removed; its watch polls every 100 ms, so the bound is 500 ms.
func TestSQLiteHearsRefreshAtOnce(t *testing.T) {
	t.Parallel()
	path := sqliteFile(t)
	storetest.HearsRefreshAtOnce(t, sqliteStore(t, path), sqliteStore(t, path), 50, 20, 500*time.Millisecond)
}

// TestPostgresChangesSeenAfterWatchLost: B's LISTEN backend is ended (pg_terminate_backend), and
// A refreshes five users and removes one meanwhile. B has all of it within its SyncEvery, and
// hears later changes at once.
func TestPostgresChangesSeenAfterWatchLost(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	prefix := uniquePrefix()
	app := fmt.Sprintf("watcher-%d", serial.Add(1))
	b := New(pgDB(t, srv, app), Postgres)
	b.Prefix = prefix
	admin := pgDB(t, srv, "sqlstore-admin")
	storetest.ChangesSeenAfterWatchLost(t, pgStore(t, srv, prefix), b, 5*time.Second, storetest.WatchLoss{
		Lose: func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
			defer cancel()
			pids := listenBackends(t, ctx, admin, app)
			if len(pids) != 1 {
				t.Fatalf("%d LISTEN backends of B's watch, want 1", len(pids))
			}
			var killed bool
			if err := admin.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", pids[0]).Scan(&killed); err != nil || !killed {
				t.Fatalf("pg_terminate_backend: %v, %v", killed, err)
			}
		},
	})
}
