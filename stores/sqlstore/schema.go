package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// SchemaVersion is the version of the tables this package reads and writes, recorded in the
// schema table. A Store refuses tables of a later version, written by a newer sqlstore.
const SchemaVersion = 1

// maxPrefix caps Prefix: PostgreSQL cuts identifiers at 63 bytes.
const maxPrefix = 40

// validPrefix is what a table prefix may be: an SQL identifier needing no quotes in either dialect.
var validPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// The tables of each dialect, with {p} for the prefix. The README shows them with the default
// prefix; TestREADMESchema keeps the two the same.
const (
	postgresSchema = `CREATE TABLE IF NOT EXISTS {p}schema (
    id      integer PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}tokens (
    key        text        PRIMARY KEY,
    token      text        NOT NULL,
    sealed     bytea,
    key_id     text,
    version    bigint      NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((sealed IS NULL) = (key_id IS NULL))
);
CREATE TABLE IF NOT EXISTS {p}locks (
    key        text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
INSERT INTO {p}schema (id, version) VALUES (1, 1) ON CONFLICT (id) DO NOTHING;`

	sqliteSchema = `CREATE TABLE IF NOT EXISTS {p}schema (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS {p}tokens (
    key        TEXT    PRIMARY KEY NOT NULL,
    token      TEXT    NOT NULL,
    sealed     BLOB,
    key_id     TEXT,
    version    INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((sealed IS NULL) = (key_id IS NULL))
);
CREATE TABLE IF NOT EXISTS {p}locks (
    key        TEXT    PRIMARY KEY NOT NULL,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO {p}schema (id, version) VALUES (1, 1) ON CONFLICT (id) DO NOTHING;`
)

// Schema returns the SQL that creates the tables of a Store of dialect whose Prefix is prefix
// ("" for DefaultPrefix): what the Store runs at first use when they are missing, and what an
// operator may run by hand instead. Running it again changes nothing.
func Schema(dialect Dialect, prefix string) (string, error) {
	prefix, err := checkPrefix(prefix)
	if err != nil {
		return "", err
	}
	var sql string
	switch dialect {
	case Postgres:
		sql = postgresSchema
	case SQLite:
		sql = sqliteSchema
	default:
		return "", fmt.Errorf("sqlstore: unknown dialect %v", dialect)
	}
	return strings.ReplaceAll(sql, "{p}", prefix) + "\n", nil
}

// checkPrefix returns prefix, or DefaultPrefix when it is empty, if it is a valid table prefix.
func checkPrefix(prefix string) (string, error) {
	if prefix == "" {
		return DefaultPrefix, nil
	}
	if len(prefix) > maxPrefix || !validPrefix.MatchString(prefix) {
		return "", fmt.Errorf("sqlstore: table prefix %q is not a lowercase SQL identifier of at most %d characters (a-z, 0-9, _)", prefix, maxPrefix)
	}
	return prefix, nil
}

// queries are the statements of one Store, with its tables' names in them.
type queries struct {
	dialect                                      Dialect
	prefix                                       string
	schema, tableExists, version                 string
	load, save, saveIf, delete, deleteLock, keys string
	saveIfSeen                                   string // saveIf, also checking the row's bytes
	// PostgreSQL: saveIf and saveIfSeen that also release the lock held as their last parameter
	// when they update the row, in the same statement (see lease.SaveIfUnlock).
	saveIfUnlock, saveIfSeenUnlock string
	lock, renew, unlock, unsealed  string
	lockLoad                       string // PostgreSQL: lock, and the token row read
	stamps                         string // SQLite: what a watch compares
}

// maxNotifyKey is the longest key a PostgreSQL notification carries: its payload must be shorter
// than 8000 bytes. A longer key's write notifies "" (see [Store.WatchChanges]).
const maxNotifyKey = 7999

// changesChannel is the PostgreSQL notification channel of the tables whose names start with
// prefix, a checked prefix: an identifier that needs no quotes, as the tables' names are.
func changesChannel(prefix string) string { return prefix + "changes" }

// newQueries returns the statements of dialect on the tables whose names start with prefix.
func newQueries(dialect Dialect, prefix string) (*queries, error) {
	schema, err := Schema(dialect, prefix)
	if err != nil {
		return nil, err
	}
	prefix, _ = checkPrefix(prefix)
	// clock is the database's time, for leases; now the time of a row's write.
	var clock, now, tableExists, unsealed string
	switch dialect {
	case Postgres:
		clock, now = "clock_timestamp()", "now()"
		tableExists = "SELECT to_regclass($1) IS NOT NULL"
		unsealed = "SELECT key FROM {tokens} WHERE key_id IS DISTINCT FROM $1"
	case SQLite:
		clock, now = "CAST(unixepoch('subsec') * 1000 AS INTEGER)", "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
		tableExists = "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = $1"
		unsealed = "SELECT key FROM {tokens} WHERE key_id IS NOT $1"
	}
	// ms is a lease's length, given in milliseconds as $3.
	ms := "$3"
	if dialect == Postgres {
		ms = "($3::bigint * interval '1 millisecond')"
	}
	q := &queries{
		dialect:     dialect,
		prefix:      prefix,
		schema:      schema,
		tableExists: tableExists,
		version:     "SELECT version FROM {schema} WHERE id = 1",
		load:        "SELECT token, sealed, key_id, version FROM {tokens} WHERE key = $1",
		save: "INSERT INTO {tokens} (key, token, sealed, key_id, version, updated_at) VALUES ($1, $2, $3, $4, 1, " + now + ") " +
			"ON CONFLICT (key) DO UPDATE SET token = excluded.token, sealed = excluded.sealed, key_id = excluded.key_id, " +
			"version = {tokens}.version + 1, updated_at = excluded.updated_at",
		saveIf: "UPDATE {tokens} SET token = $3, sealed = $4, key_id = $5, version = version + 1, updated_at = " + now +
			" WHERE key = $1 AND version = $2",
		saveIfSeen: "UPDATE {tokens} SET token = $3, sealed = $4, key_id = $5, version = version + 1, updated_at = " + now +
			" WHERE key = $1 AND version = $2 AND token = $6 AND sealed IS NOT DISTINCT FROM $7",
		delete:     "DELETE FROM {tokens} WHERE key = $1",
		deleteLock: "DELETE FROM {locks} WHERE key = $1 AND expires_at <= " + clock,
		keys:       "SELECT key FROM {tokens}",
		lock: "INSERT INTO {locks} (key, holder, expires_at) VALUES ($1, $2, " + clock + " + " + ms + ") " +
			"ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at " +
			"WHERE {locks}.expires_at <= " + clock,
		renew:    "UPDATE {locks} SET expires_at = " + clock + " + " + ms + " WHERE key = $1 AND holder = $2 AND expires_at > " + clock,
		unlock:   "DELETE FROM {locks} WHERE key = $1 AND holder = $2",
		unsealed: unsealed,
	}
	switch dialect {
	case Postgres:
		// A lock's writes commit without waiting for the disk: a lock is a lease, whose loss in a
		// server crash frees it early (the fenced saves and spending marks, committed as every
		// token write is, still keep a second holder from storing over the first or spending its
		// refresh token) or keeps it until its lease ends. This takes two fsyncs off a refresh.
		// set_config(..., true) lasts to the end of the statement's own transaction.
		const async = "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)) "
		q.lock = async + "INSERT INTO {locks} (key, holder, expires_at) SELECT $1, $2, " + clock + " + " + ms + " FROM async " +
			"ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at " +
			"WHERE {locks}.expires_at <= " + clock
		q.renew = async + "UPDATE {locks} SET expires_at = " + clock + " + " + ms + " FROM async WHERE key = $1 AND holder = $2 AND expires_at > " + clock
		q.unlock = async + "DELETE FROM {locks} USING async WHERE key = $1 AND holder = $2"
		// LockLease takes the lock and reads the token row in one round trip: a row when the lock
		// was taken (its token columns NULL when there is no token), none when it was not. The
		// read is FOR SHARE so that it gives the row as it is once the lock is taken, not as the
		// statement's snapshot had it: the lock may be taken after waiting for the holder before,
		// whose last write, in the statement that freed the lock, commits after the snapshot.
		q.lockLoad = async + ", l AS (INSERT INTO {locks} (key, holder, expires_at) SELECT $1, $2, " + clock + " + " + ms + " FROM async " +
			"ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at " +
			"WHERE {locks}.expires_at <= " + clock + " RETURNING key), " +
			"t AS (SELECT token, sealed, key_id, version FROM {tokens} WHERE key = $1 AND EXISTS (SELECT 1 FROM l) FOR SHARE) " +
			"SELECT t.token, t.sealed, t.key_id, t.version FROM l LEFT JOIN t ON true"
		// Every write of a token row notifies the watchers (see Store.WatchChanges) in the write's
		// statement: the notification is sent when the write commits, and not when it does not,
		// and costs no statement more. The SELECT returns a row per row written, so that SaveIf
		// still counts the rows it updated.
		notify := func(write string) string {
			return fmt.Sprintf("WITH w AS (%s RETURNING key) SELECT pg_notify('{channel}', CASE WHEN octet_length(key) <= %d THEN key ELSE '' END) FROM w",
				write, maxNotifyKey)
		}
		// The last save under a lock releases it in its own statement when it updates the row:
		// one commit, which waits for the disk as the token's write must. It locks the lock's row
		// (h) before the token's, as the lock statement takes them: a next holder taking over a
		// lock whose lease ran out waits for it, and the two never wait on each other.
		unlocking := func(write, holder string) string {
			return fmt.Sprintf("WITH h AS (SELECT key FROM {locks} WHERE key = $1 FOR UPDATE), "+
				"w AS (%s AND (SELECT count(*) FROM h) >= 0 RETURNING key), "+
				"u AS (DELETE FROM {locks} USING w WHERE {locks}.key = w.key AND {locks}.holder = %s) "+
				"SELECT pg_notify('{channel}', CASE WHEN octet_length(w.key) <= %d THEN w.key ELSE '' END) FROM w",
				write, holder, maxNotifyKey)
		}
		q.saveIfUnlock, q.saveIfSeenUnlock = unlocking(q.saveIf, "$6"), unlocking(q.saveIfSeen, "$8")
		q.save, q.saveIf, q.saveIfSeen, q.delete = notify(q.save), notify(q.saveIf), notify(q.saveIfSeen), notify(q.delete)
	case SQLite:
		q.stamps = "SELECT key, rowid, version, updated_at FROM {tokens}"
		q.saveIfSeen = strings.Replace(q.saveIfSeen, "IS NOT DISTINCT FROM", "IS", 1)
	}
	names := strings.NewReplacer("{tokens}", prefix+"tokens", "{locks}", prefix+"locks", "{schema}", prefix+"schema",
		"{channel}", changesChannel(prefix))
	for _, p := range []*string{&q.version, &q.load, &q.save, &q.saveIf, &q.saveIfSeen, &q.delete, &q.deleteLock, &q.keys,
		&q.saveIfUnlock, &q.saveIfSeenUnlock, &q.lock, &q.renew, &q.unlock, &q.unsealed, &q.stamps, &q.lockLoad} {
		*p = names.Replace(*p)
		if dialect == SQLite {
			*p = sqlitePlaceholders(*p)
		}
	}
	if dialect == SQLite {
		q.tableExists = sqlitePlaceholders(q.tableExists)
	}
	return q, nil
}

// placeholder is PostgreSQL's numbered parameter.
var placeholder = regexp.MustCompile(`\$([0-9]+)`)

// sqlitePlaceholders turns $1 into ?1, SQLite's numbered parameter.
func sqlitePlaceholders(q string) string { return placeholder.ReplaceAllString(q, "?$1") }

// queries returns the Store's statements, making sure first, once, that its tables are there (and
// creating them when they are not) at a schema version it knows.
func (s *Store) queries(ctx context.Context) (*queries, error) {
	if q := s.q.Load(); q != nil && q.dialect == s.Dialect && (q.prefix == s.Prefix || s.Prefix == "" && q.prefix == DefaultPrefix) {
		return q, nil
	}
	if s.DB == nil {
		return nil, errors.New("sqlstore: the Store has no DB")
	}
	q, err := newQueries(s.Dialect, s.Prefix)
	if err != nil {
		return nil, err
	}
	prefix, _ := checkPrefix(s.Prefix)
	var exists bool
	if err := s.queryRow(ctx, q.tableExists, []any{prefix + "schema"}, &exists); err != nil {
		return nil, fmt.Errorf("sqlstore: look for the tables: %w", err)
	}
	if !exists {
		if err := s.createSchema(ctx, q); err != nil {
			return nil, fmt.Errorf("sqlstore: create the tables: %w", err)
		}
	}
	var version int
	err = s.queryRow(ctx, q.version, nil, &version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("sqlstore: table %sschema holds no version: insert it as the README says", prefix)
	case err != nil:
		return nil, fmt.Errorf("sqlstore: read the schema version: %w", err)
	case version > SchemaVersion:
		return nil, fmt.Errorf("sqlstore: the tables are at schema version %d, which a newer sqlstore wrote; this one knows version %d: upgrade it", version, SchemaVersion)
	case version < 1:
		return nil, fmt.Errorf("sqlstore: table %sschema holds version %d, which no sqlstore wrote", prefix, version)
	}
	s.q.Store(q)
	return q, nil
}

// createSchema creates the tables, and records their version, in one transaction, so that a
// replica starting beside this one never finds the tables without their version. On PostgreSQL
// the transaction holds an advisory lock, so that replicas starting together do not trip over
// each other's CREATE TABLE; on SQLite it is a write, run again whole while another connection
// holds the database's lock.
func (s *Store) createSchema(ctx context.Context, q *queries) error {
	if s.Dialect == SQLite {
		return s.write(ctx, func() error { return s.schemaTx(ctx, q) })
	}
	return dbError(ctx, s.schemaTx(ctx, q))
}

// schemaTx runs the schema's statements in one transaction.
func (s *Store) schemaTx(ctx context.Context, q *queries) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.Dialect == Postgres {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "twitchoauth schema"); err != nil {
			return err
		}
	}
	for stmt := range strings.SplitSeq(q.schema, ";") {
		if strings.TrimSpace(stmt) == "" {
			continue
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return tx.Commit()
}
