// Package sqlstore keeps twitchoauth tokens in a SQL database, PostgreSQL or SQLite, so that a
// service with thousands of users keeps them in one table, and several replicas of it share one
// login per user and never send the same refresh token twice.
//
// [Store] implements [twitchoauth.TokenStore] over database/sql: one row per user in a tokens
// table, holding the JSON of [twitchoauth.StoredToken] (the token file's format), and a lease row
// per locked user in a locks table. Hand it the *sql.DB the service already has:
//
//	db, err := sql.Open("pgx", os.Getenv("DATABASE_URL"))
//	store := sqlstore.New(db, sqlstore.Postgres)
//	users := twitchoauth.NewUserTokens(c, store)
//	go users.Run(ctx) // validates each token hourly, the work shared between the replicas
//
// or a DSN, with [Open], whose [Store.Close] then closes the database. The tables are created at
// first use (CREATE TABLE IF NOT EXISTS); the README gives their SQL, for an operator who creates
// them by hand. With a [Keyring], the access and refresh tokens are sealed with AES-256-GCM before
// they reach the database, and keys can rotate.
//
// This package imports no database driver: a program imports the package of the one it uses,
// which links it in, and pays for no other.
//
//	import _ "github.com/twitchoauth/twitchoauth/stores/sqlstore/postgres" // pgx: driver name "pgx"
//	import _ "github.com/twitchoauth/twitchoauth/stores/sqlstore/sqlite"   // modernc.org/sqlite: "sqlite"
//
// [Open] of a dialect whose package the program does not import fails saying which to import, and
// so does [Store.WatchChanges] on PostgreSQL, which LISTENs through pgx.
//
// A Store starts no goroutine: nothing runs in the background, and there is nothing to stop.
// [Store.WatchChanges], through which a replica hears at once of the tokens the others save and
// delete, runs in the goroutine that calls it and starts nothing that outlives it. On PostgreSQL,
// every write of a token row notifies the channel Prefix+"changes" (twitchoauth_changes) with the
// row's key, never a token (LISTEN and NOTIFY need no privilege beyond connecting), and a watch
// hears of it within a millisecond on loopback. On SQLite, a watch asks the file every
// [SQLitePollInterval] (100 ms) whether it changed, and hears of a change within some 120 ms; all
// processes sharing the file run on one machine. After a gap, when changes may have gone
// unheard (the connection was lost), a watch reports the empty key: look again at every key.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/stores/sqlstore/internal/drivers"
)

// Dialect is the SQL of a database: [Postgres] or [SQLite].
type Dialect int

const (
	// Postgres is PostgreSQL (11 or later), through github.com/jackc/pgx/v5/stdlib (driver name
	// "pgx"), which the package sqlstore/postgres links in, or any database/sql driver of it
	// ([Store.WatchChanges] needs pgx's). Lease expiry is counted by the server's clock.
	Postgres Dialect = iota + 1
	// SQLite is SQLite (3.38 or later), through modernc.org/sqlite (driver name "sqlite", no
	// cgo), which the package sqlstore/sqlite links in, or any database/sql driver of it. Lease
	// expiry is counted by the machine's clock, which every process sharing the file reads.
	SQLite
)

// String returns the dialect's name.
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "PostgreSQL"
	case SQLite:
		return "SQLite"
	}
	return fmt.Sprintf("Dialect(%d)", int(d))
}

// driverKey names d in the registry of drivers (internal/drivers).
func (d Dialect) driverKey() string {
	switch d {
	case Postgres:
		return drivers.Postgres
	case SQLite:
		return drivers.SQLite
	}
	return ""
}

// driverPackage is the package that links d's driver into a program.
func (d Dialect) driverPackage() string {
	return "github.com/twitchoauth/twitchoauth/stores/sqlstore/" + d.driverKey()
}

// DefaultPrefix starts the name of every table a [Store] uses unless its Prefix says otherwise:
// twitchoauth_tokens, twitchoauth_locks and twitchoauth_schema.
const DefaultPrefix = "twitchoauth_"

// DefaultBusyTimeout is how long a statement on SQLite waits for another connection's write to
// end, unless the Store's BusyTimeout says otherwise.
const DefaultBusyTimeout = 5 * time.Second

// Store is a [twitchoauth.TokenStore] in a SQL database. The token of key k is the row of k in
// Prefix+"tokens"; its lock, while held, the row of k in Prefix+"locks" (see the README for the
// tables). A Store is safe for concurrent use; replicas each make their own, over their own
// *sql.DB. Set its fields before its first use.
//
// Store also implements [twitchoauth.LeaseLocker] (a lease that can be renewed while a slow
// refresh is in flight), [twitchoauth.ConditionalSaver] (a save that a replica whose lease ran
// out cannot make over a newer pair: a compare-and-set on the row's version),
// [twitchoauth.KeyLister] (so that replicas' registries see each other's users) and
// [twitchoauth.ChangeWatcher] (so that they hear at once of each other's writes).
type Store struct {
	// DB is the database. A Store made by [New] never closes it; one made by [Open] closes it in
	// Close.
	DB *sql.DB
	// Dialect is the SQL that DB speaks: Postgres or SQLite.
	Dialect Dialect
	// Prefix starts the name of each table, so that one database can serve several apps: ASCII
	// lowercase letters, digits and underscores, starting with a letter or an underscore, 40
	// characters at most (it is checked, never put into SQL unchecked). Defaults to
	// DefaultPrefix (also when empty). To keep the tables in a PostgreSQL schema of their own,
	// set search_path in the connection string.
	Prefix string
	// Keyring, if set, seals the access and refresh tokens of every row written with its current
	// key (AES-256-GCM) and opens rows sealed with any of its keys. Rows written before it was set
	// are read as they are, and sealed at their next write. Defaults to none: tokens are stored
	// as the token file holds them, and a sealed row cannot be read (ErrCannotUnseal).
	Keyring *Keyring
	// BusyTimeout (SQLite only) is how long a statement waits, polling, while another connection
	// or process holds the database's write lock, before it fails with an error that says so.
	// Defaults to DefaultBusyTimeout.
	BusyTimeout time.Duration

	stmts     sync.Map                // SQLite: query → *preparedStmt (see prepared)
	owned     bool                    // made by Open: Close closes DB
	writeOnce sync.Once               // makes writes
	writes    chan struct{}           // SQLite: held by the write under way
	q         atomic.Pointer[queries] // the statements, once the schema is known to be there
	seen      sync.Map                // key → *knownRow: the row as this Store last read or wrote it
	// lockSync is what lockSyncMode found, once it found it; guarded by lockSyncMu.
	lockSync   *string
	lockSyncMu sync.Mutex
}

var (
	_ twitchoauth.LeaseLocker      = (*Store)(nil)
	_ twitchoauth.LeaseReader      = (*Store)(nil)
	_ twitchoauth.ReleasingSaver   = (*Store)(nil)
	_ twitchoauth.ConditionalSaver = (*Store)(nil)
	_ twitchoauth.KeyLister        = (*Store)(nil)
)

// New returns a Store over db, which speaks dialect, with the default table names. It does not
// touch the database: the tables are created, if need be, at first use. The Store never closes db.
func New(db *sql.DB, dialect Dialect) *Store {
	return &Store{DB: db, Dialect: dialect, Prefix: DefaultPrefix}
}

// Open opens the database at dsn with the dialect's driver (pgx for Postgres, modernc.org/sqlite
// for SQLite), checks within ctx that it answers, and returns a Store over it with the default
// table names, whose Close closes the database. As with New, the tables are created at first use:
// set the Store's fields before.
//
// The driver is the one the dialect's package links into the program: import
// github.com/twitchoauth/twitchoauth/stores/sqlstore/postgres for Postgres, .../sqlstore/sqlite
// for SQLite (for its side effect: import _ "..."). Without it, Open fails saying which package
// to import.
//
// For Postgres, dsn is a connection string or URL ("postgres://user@host/db") and the pool is
// capped at 10 connections (change it with s.DB.SetMaxOpenConns). For SQLite, dsn is a file name
// or a "file:" URI; unless it sets a journal mode, the file is put in WAL mode, so that readers
// never wait for a writer. Every process that shares the file must be on the same machine.
func Open(ctx context.Context, dialect Dialect, dsn string) (*Store, error) {
	key := dialect.driverKey()
	if key == "" {
		return nil, fmt.Errorf("sqlstore: open: unknown dialect %v", dialect)
	}
	d, ok := drivers.Lookup(key)
	if !ok {
		return nil, fmt.Errorf("sqlstore: open: this program links no %v driver: import _ %q", dialect, dialect.driverPackage())
	}
	db, err := sql.Open(d.Name, dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %v database: %w", dialect, err) // the driver does not quote the DSN
	}
	switch {
	case dialect == Postgres:
		db.SetMaxOpenConns(10)
		db.SetMaxIdleConns(10)
	case isMemory(dsn):
		db.SetMaxOpenConns(1) // each connection to ":memory:" would be a database of its own
	}
	s := New(db, dialect)
	s.owned = true
	// On a new SQLite file, even the first statement may find the database locked by another
	// process opening it.
	if err := s.retryBusy(ctx, time.Time{}, func() error { return db.PingContext(ctx) }); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: open %v database: %w", dialect, err)
	}
	if dialect == SQLite && wantsWAL(dsn) {
		if err := s.walMode(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("sqlstore: open SQLite database: put it in WAL mode: %w", err)
		}
	}
	return s, nil
}

// wantsWAL reports whether Open puts the SQLite file of dsn in WAL mode: unless dsn names a
// journal mode of its own, or an in-memory database.
func wantsWAL(dsn string) bool {
	lower := strings.ToLower(dsn)
	return !strings.Contains(lower, "journal_mode") && !strings.Contains(lower, "_journal") && !isMemory(dsn)
}

// walMode puts the SQLite file in WAL mode, which the file keeps: each connection opened after
// finds it so. The change takes the database's lock, which another process opening the same new
// file may hold (putting it in WAL mode too, or creating the tables), so it is a write like
// another: waited for, and run again, BusyTimeout at most.
func (s *Store) walMode(ctx context.Context) error {
	return s.write(ctx, func() error {
		var mode string
		return s.DB.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
	})
}

// isMemory reports whether an SQLite DSN names an in-memory database.
func isMemory(dsn string) bool {
	return strings.HasPrefix(dsn, ":memory:") || strings.Contains(dsn, "mode=memory")
}

// Close closes the database if the Store opened it (see [Open]). A Store made by [New] leaves the
// database open, and closes only the statements it prepared on it (SQLite), which would otherwise
// stay prepared on its connections until the database closes.
func (s *Store) Close() error {
	s.stmts.Range(func(query, v any) bool {
		v.(*preparedStmt).st.Close()
		s.stmts.Delete(query)
		return true
	})
	if !s.owned {
		return nil
	}
	return s.DB.Close()
}

// dbError returns ctx's error in place of the driver's when ctx ended, so that errors.Is
// matches context.Canceled and context.DeadlineExceeded whatever the driver reported.
func dbError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}
