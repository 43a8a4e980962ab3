package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// dialects runs f as a subtest per dialect, with a function that returns a new, empty store's
// opener: each call of connect is a replica with a *sql.DB of its own, on the same tables.
func dialects(t *testing.T, f func(t *testing.T, open func(t *testing.T) (connect func(t *testing.T) *Store))) {
	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		srv := needPostgres(t)
		f(t, func(t *testing.T) func(t *testing.T) *Store {
			prefix := uniquePrefix()
			return func(t *testing.T) *Store { return pgStore(t, srv, prefix) }
		})
	})
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		f(t, func(t *testing.T) func(t *testing.T) *Store {
			path := sqliteFile(t)
			return func(t *testing.T) *Store { return sqliteStore(t, path) }
		})
	})
}

// TestSuite runs the store conformance suite, each replica on a *sql.DB of its own: on a real
// PostgreSQL server, and on SQLite files; plain and sealed.
func TestSuite(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		for _, sealed := range []bool{false, true} {
			t.Run(map[bool]string{false: "Plain", true: "Sealed"}[sealed], func(t *testing.T) {
				twitchoauthtest.TestTokenStore(t, func(t *testing.T) func(t *testing.T) twitchoauth.TokenStore {
					connect := open(t)
					return func(t *testing.T) twitchoauth.TokenStore {
						s := connect(t)
						if sealed {
							s.Keyring = testKeyring(t, "k1", "k1")
						}
						return s
					}
				})
			})
		}
	})
}

// TestREADMESchema: the SQL the README gives for each dialect is exactly what the Store runs.
func TestREADMESchema(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		d     Dialect
		fence string
	}{{Postgres, "```sql\n-- PostgreSQL\n"}, {SQLite, "```sql\n-- SQLite\n"}} {
		want, err := Schema(tc.d, "")
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(readme), tc.fence)
		if !ok {
			t.Errorf("README has no %q block", tc.fence)
			continue
		}
		got, _, _ := strings.Cut(rest, "```")
		if got != want {
			t.Errorf("README's %v schema differs from Schema(%v, \"\"):\n%s\nwant:\n%s", tc.d, tc.d, got, want)
		}
	}
}

func TestPrefix(t *testing.T) {
	for _, bad := range []string{"x;DROP TABLE users;--", "Upper_", "1abc", "a-b", "a b", `a"`, strings.Repeat("a", 41), "é_"} {
		if _, err := Schema(Postgres, bad); err == nil {
			t.Errorf("Schema accepted prefix %q", bad)
		}
		s := New(&sql.DB{}, SQLite)
		s.Prefix = bad
		if _, err := s.Load(t.Context(), "k"); err == nil || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("Load with prefix %q: %v, want the prefix refused", bad, err)
		}
	}
	for _, good := range []string{"a", "_", "app1_", "twitch_oauth_", strings.Repeat("a", 40)} {
		if _, err := Schema(SQLite, good); err != nil {
			t.Errorf("Schema(%q): %v", good, err)
		}
	}
	if _, err := Schema(Dialect(0), ""); err == nil {
		t.Error("Schema of the zero Dialect succeeded")
	}
	if _, err := New(nil, SQLite).Load(t.Context(), "k"); err == nil {
		t.Error("Load on a Store without DB succeeded")
	}
}

// TestSchema: the tables are created at first use, under the prefix, with the schema version;
// an operator's tables (made by hand, by a user that may not create tables) are used as they are;
// tables of a newer schema version are refused.
func TestSchema(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		ctx := t.Context()
		connect := open(t)
		s := connect(t)
		s.Prefix = "app_" + strings.TrimSuffix(uniquePrefix(), "_") + "_"
		if err := s.Save(ctx, "1", &twitchoauth.StoredToken{AccessToken: "a"}); err != nil {
			t.Fatal(err)
		}
		var version int
		if err := s.DB.QueryRowContext(ctx, "SELECT version FROM "+s.Prefix+"schema").Scan(&version); err != nil || version != SchemaVersion {
			t.Errorf("schema version %d, %v; want %d", version, err, SchemaVersion)
		}
		var token string
		if err := s.DB.QueryRowContext(ctx, "SELECT token FROM "+s.Prefix+"tokens WHERE key = '1'").Scan(&token); err != nil || !strings.Contains(token, `"token":"a"`) {
			t.Errorf("row holds %s, %v", token, err)
		}

		// Tables made by hand from Schema: used as they are.
		byHand := connect(t)
		byHand.Prefix = "hand_" + strings.TrimSuffix(uniquePrefix(), "_") + "_"
		ddl, err := Schema(byHand.Dialect, byHand.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		for stmt := range strings.SplitSeq(ddl, ";") {
			if strings.TrimSpace(stmt) != "" {
				if _, err := byHand.DB.ExecContext(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := byHand.Save(ctx, "1", &twitchoauth.StoredToken{AccessToken: "a"}); err != nil {
			t.Fatalf("Save on tables made by hand: %v", err)
		}

		// A newer version is refused, by a Store that has not looked yet.
		if _, err := s.DB.ExecContext(ctx, "UPDATE "+s.Prefix+"schema SET version = 2"); err != nil {
			t.Fatal(err)
		}
		later := connect(t)
		later.Prefix = s.Prefix
		if _, err := later.Load(ctx, "1"); err == nil || !strings.Contains(err.Error(), "schema version 2") {
			t.Errorf("Load on tables of schema version 2: %v", err)
		}
	})
}

// TestSchemaByHandRestrictedUser: on PostgreSQL, the tables an operator created as the README says
// serve a database user with only the privileges the README lists, who cannot create tables.
func TestSchemaByHandRestrictedUser(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	ctx := t.Context()
	admin := pgDB(t, srv, "sqlstore-admin")
	role := "bot_" + strings.TrimSuffix(uniquePrefix(), "_")
	prefix := role + "_"
	ddl, err := Schema(Postgres, prefix)
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		"CREATE ROLE " + role + " LOGIN",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		ddl,
		// The README's grants, for the default names.
		fmt.Sprintf("GRANT SELECT ON %sschema TO %s", prefix, role),
		fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON %stokens, %slocks TO %s", prefix, prefix, role),
	}
	for _, stmt := range stmts {
		if _, err := admin.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db, err := sql.Open("pgx", strings.Replace(srv.DSN("postgres", "restricted"), "user=postgres", "user="+role, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE TABLE "+prefix+"other (x int)"); err == nil {
		t.Fatal("the restricted user can create tables; the test shows nothing")
	}
	s := New(db, Postgres)
	s.Prefix = prefix
	if err := s.Save(ctx, "1", &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	lease, err := s.LockLease(ctx, "1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveIf(ctx, "1", &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r"}, &twitchoauth.StoredToken{AccessToken: "b"}); err != nil {
		t.Fatal(err)
	}
	if err := lease.Unlock(); err != nil {
		t.Fatal(err)
	}
	if keys, err := s.Keys(ctx); err != nil || len(keys) != 1 {
		t.Errorf("Keys = %q, %v", keys, err)
	}
	if err := s.Delete(ctx, "1"); err != nil {
		t.Fatal(err)
	}
}

// TestTokenFileFormat: a row holds the token file's JSON, so a token file moves into the table
// with one INSERT, and a row's JSON is a token file.
func TestTokenFileFormat(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		ctx := t.Context()
		s := open(t)(t)
		fs := &twitchoauth.FileStore{Path: filepath.Join(t.TempDir(), "user_token.json")}
		want := &twitchoauth.StoredToken{AccessToken: "acc", RefreshToken: "ref", UserID: "42", Login: "bot", ClientID: "cid",
			Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead}}
		if err := fs.Save(ctx, "", want); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(fs.Path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Keys(ctx); err != nil { // creates the tables
			t.Fatal(err)
		}
		ins := "INSERT INTO " + s.Prefix + "tokens (key, token) VALUES ($1, $2)"
		if s.Dialect == SQLite {
			ins = sqlitePlaceholders(ins)
		}
		if _, err := s.DB.ExecContext(ctx, ins, "42", string(data)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Load(ctx, "42")
		if err != nil {
			t.Fatal(err)
		}
		if got.AccessToken != "acc" || got.RefreshToken != "ref" || !got.Expiry.Equal(want.Expiry) || got.Login != "bot" ||
			fmt.Sprint(got.Scopes) != fmt.Sprint(want.Scopes) {
			t.Errorf("Load = %+v, want %+v", got, want)
		}
		if err := s.Save(ctx, "43", want); err != nil {
			t.Fatal(err)
		}
		var raw string
		if err := s.DB.QueryRowContext(ctx, "SELECT token FROM "+s.Prefix+"tokens WHERE key = '43'").Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if st, err := twitchoauth.DecodeStoredToken([]byte(raw)); err != nil || st.AccessToken != "acc" || st.Login != "bot" {
			t.Errorf("the row's JSON reads as %+v, %v", st, err)
		}
	})
}

// TestCorrupt: a row that holds no token is ErrTokenCorrupt, never quoted in the error, and
// SaveIf never replaces it.
func TestCorrupt(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		s := open(t)(t)
		ctx := t.Context()
		if _, err := s.Keys(ctx); err != nil {
			t.Fatal(err)
		}
		ins := "INSERT INTO " + s.Prefix + "tokens (key, token) VALUES ($1, $2)"
		if s.Dialect == SQLite {
			ins = sqlitePlaceholders(ins)
		}
		for i, value := range []string{
			"sekrit-garbage",
			`{"token":"sekrit","refresh":"sekrit`,
			`{"refresh":"sekrit"}`,
			`null`,
			`["sekrit"]`,
			`{"token":"sekrit","expiry":"sekrit-time"}`,
			`{"token":"sekrit","login":"` + strings.Repeat("x", twitchoauth.MaxStoredTokenSize) + `"}`,
		} {
			key := fmt.Sprint("bad", i)
			if _, err := s.DB.ExecContext(ctx, ins, key, value); err != nil {
				t.Fatal(err)
			}
			_, err := s.Load(ctx, key)
			if !errors.Is(err, twitchoauth.ErrTokenCorrupt) || strings.Contains(err.Error(), "sekrit") {
				t.Errorf("Load of row %d: %v; want ErrTokenCorrupt, without the value", i, err)
			}
			err = s.SaveIf(ctx, key, &twitchoauth.StoredToken{AccessToken: "sekrit"}, &twitchoauth.StoredToken{AccessToken: "new"})
			if !errors.Is(err, twitchoauth.ErrTokenChanged) || strings.Contains(err.Error(), "sekrit") {
				t.Errorf("SaveIf over row %d: %v; want ErrTokenChanged, without the value", i, err)
			}
		}
		if err := s.Save(ctx, "k", nil); err == nil {
			t.Error("Save(nil) succeeded")
		}
		if err := s.SaveIf(ctx, "k", nil, &twitchoauth.StoredToken{AccessToken: "a"}); err == nil {
			t.Error("SaveIf(nil prev) succeeded")
		}
	})
}

// TestOpenAndClose: a Store made by New never closes the caller's DB; one made by Open closes its
// own. Open of a database that cannot be reached fails within its context.
func TestOpenAndClose(t *testing.T) {
	t.Parallel()
	path := sqliteFile(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db, SQLite)
	if err := s.Save(t.Context(), "k", &twitchoauth.StoredToken{AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(t.Context()); err != nil {
		t.Errorf("the caller's DB after Close of a Store made by New: %v", err)
	}
	opened, err := Open(t.Context(), SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := opened.Load(t.Context(), "k"); err != nil || st.AccessToken != "a" {
		t.Errorf("Open's Store reads %+v, %v", st, err)
	}
	var mode string
	if err := opened.DB.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal mode %q, %v; want wal", mode, err)
	}
	if err := opened.Close(); err != nil {
		t.Fatal(err)
	}
	if err := opened.DB.PingContext(t.Context()); err == nil {
		t.Error("Open's DB still open after Close")
	}

	mem, err := Open(t.Context(), SQLite, ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if err := mem.Save(t.Context(), "k", &twitchoauth.StoredToken{AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	if st, err := mem.Load(t.Context(), "k"); err != nil || st.AccessToken != "a" {
		t.Errorf(":memory: reads %+v, %v", st, err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err = Open(ctx, Postgres, fmt.Sprintf("host=127.0.0.1 port=%d user=postgres sslmode=disable", freePort()))
	if err == nil || !strings.Contains(err.Error(), "sqlstore: open PostgreSQL database") {
		t.Errorf("Open of a port nothing listens on: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open of a port nothing listens on took %v", took)
	}
	if _, err := Open(ctx, Dialect(9), "x"); err == nil {
		t.Error("Open of an unknown dialect succeeded")
	}
}

// TestContextErrors: a canceled context comes back as itself, whatever the driver says.
func TestContextErrors(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		s := open(t)(t)
		if _, err := s.Keys(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		checks := map[string]error{}
		_, checks["Load"] = s.Load(ctx, "k")
		checks["Save"] = s.Save(ctx, "k", &twitchoauth.StoredToken{AccessToken: "a"})
		checks["SaveIf"] = s.SaveIf(ctx, "k", &twitchoauth.StoredToken{AccessToken: "a"}, &twitchoauth.StoredToken{AccessToken: "b"})
		_, checks["Lock"] = s.Lock(ctx, "k", time.Minute)
		_, checks["Keys"] = s.Keys(ctx)
		checks["Delete"] = s.Delete(ctx, "k")
		for op, err := range checks {
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context: %v, want context.Canceled", op, err)
			}
		}
		// A lock released after its holder's context ended.
		hctx, end := context.WithCancel(t.Context())
		unlock, err := s.Lock(hctx, "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		end()
		if err := unlock(); err != nil {
			t.Errorf("unlock after the holder's context ended: %v", err)
		}
		short, cancel2 := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel2()
		unlock, err = s.Lock(short, "k", time.Minute)
		if err != nil {
			t.Fatalf("Lock after unlock: %v", err)
		}
		unlock()
	})
}

// TestLockRow: the lock is a row with the holder's ID and the lease's end by the database's
// clock; Renew moves the end, unlock deletes the row, and a lapsed holder's unlock leaves the new
// holder's row alone.
func TestLockRow(t *testing.T) {
	t.Parallel()
	dialects(t, func(t *testing.T, open func(t *testing.T) func(t *testing.T) *Store) {
		connect := open(t)
		a, b := connect(t), connect(t)
		ctx := t.Context()
		lease, err := a.LockLease(ctx, "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		holder, left := lockRow(t, a, "k")
		if len(holder) != 32 || left <= 50*time.Second || left > time.Minute+time.Second {
			t.Errorf("lock row: holder %q, %v left; want 128 bits in hex and a minute", holder, left)
		}
		if err := lease.Renew(ctx); err != nil {
			t.Fatal(err)
		}
		if err := lease.Unlock(); err != nil {
			t.Fatal(err)
		}
		if h, _ := lockRow(t, a, "k"); h != "" {
			t.Error("lock row left after unlock")
		}

		lapsed, err := a.LockLease(ctx, "k", 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		wait, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		unlockB, err := b.Lock(wait, "k", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := lapsed.Renew(ctx); !errors.Is(err, twitchoauth.ErrLeaseLost) {
			t.Errorf("Renew of a lease taken over: %v, want ErrLeaseLost", err)
		}
		if err := lapsed.Unlock(); err != nil {
			t.Errorf("the lapsed holder's unlock: %v", err)
		}
		if h, _ := lockRow(t, a, "k"); h == "" || h == holder {
			t.Errorf("the new holder's row after the lapsed holder's unlock: holder %q", h)
		}
		if err := unlockB(); err != nil {
			t.Fatal(err)
		}

		// An ended lock row goes with its token; a held one stays.
		if err := a.Save(ctx, "gone", &twitchoauth.StoredToken{AccessToken: "a"}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Lock(ctx, "gone", 20*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(40 * time.Millisecond) // the lease runs out
		if err := a.Delete(ctx, "gone"); err != nil {
			t.Fatal(err)
		}
		if h, _ := lockRow(t, a, "gone"); h != "" {
			t.Error("Delete left the ended lock row of the token")
		}
	})
}

// lockRow returns the holder of key's lock row and how long its lease has left by the database's
// clock ("" when there is none).
func lockRow(t *testing.T, s *Store, key string) (string, time.Duration) {
	t.Helper()
	query := "SELECT holder, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000 FROM " + s.Prefix + "locks WHERE key = $1"
	if s.Dialect == SQLite {
		query = "SELECT holder, expires_at - CAST(unixepoch('subsec') * 1000 AS INTEGER) FROM " + s.Prefix + "locks WHERE key = ?1"
	}
	var holder string
	var ms float64
	err := s.DB.QueryRowContext(t.Context(), query, key).Scan(&holder, &ms)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return holder, time.Duration(ms * float64(time.Millisecond))
}
