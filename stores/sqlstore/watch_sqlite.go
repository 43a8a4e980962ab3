package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"
)

// SQLitePollInterval is how often a watch of an SQLite database ([Store.WatchChanges]) asks it
// whether another connection has changed it: a change is reported within this interval and the
// read of the tokens table that finds it. SQLite tells no other process of a write, so a watch
// polls; asking costs no read of the table, only of the database's header.
const SQLitePollInterval = 100 * time.Millisecond

// stamp is what a watch of an SQLite database compares of a token row: every save changes its
// version, and a row deleted and saved anew, whose version starts at 1 again, gets a rowid of
// its own (unless it was the last row) and a new updated_at (unless within the millisecond).
type stamp struct {
	rowid, version int64
	updatedAt      string
}

// stamps are the stamps of the token rows, as a watch last read them. A read goes through every
// row, comparing each with what was seen in place, so that a read that finds little changed
// allocates little.
type stamps struct {
	rows map[string]*seenRow
	read uint64 // the number of the read under way, or the last one
}

// seenRow is a row's stamp, and the number of the read that last found the row.
type seenRow struct {
	stamp
	read uint64
}

// begin starts a read of every row.
func (ss *stamps) begin() {
	if ss.rows == nil {
		ss.rows = make(map[string]*seenRow)
	}
	ss.read++
}

// see records that the read found key's row with the given stamp, and reports whether its
// stamp changed (or it is new).
func (ss *stamps) see(key []byte, rowid, version int64, updatedAt []byte) bool {
	r, ok := ss.rows[string(key)]
	if !ok {
		ss.rows[string(key)] = &seenRow{stamp: stamp{rowid, version, string(updatedAt)}, read: ss.read}
		return true
	}
	r.read = ss.read
	if r.rowid == rowid && r.version == version && r.updatedAt == string(updatedAt) {
		return false
	}
	r.stamp = stamp{rowid, version, string(updatedAt)}
	return true
}

// end ends a read that went through every row: it forgets the keys the read did not find, and
// returns them.
func (ss *stamps) end() []string {
	var gone []string
	for k, r := range ss.rows {
		if r.read != ss.read {
			gone = append(gone, k)
			delete(ss.rows, k)
		}
	}
	return gone
}

// poll watches an SQLite database as WatchChanges says, on a connection of DB of its own, until
// ctx ends or the database fails with an error that a later poll would not pass.
func (s *Store) poll(ctx context.Context, changed func(string), watching func()) error {
	q, err := s.queries(ctx)
	if err != nil {
		return err
	}
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return describe(ctx, err)
	}
	defer conn.Close()
	if err := notInMemory(ctx, conn); err != nil {
		return err
	}
	var version int64
	if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&version); err != nil {
		return describe(ctx, err)
	}
	var seen stamps
	if _, err := seen.readAll(ctx, conn, q.stamps); err != nil {
		return err
	}
	watching()
	tick := time.NewTicker(SQLitePollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		var now int64
		err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&now)
		if err == nil && now == version {
			continue
		}
		var keys []string
		if err == nil {
			keys, err = seen.readAll(ctx, conn, q.stamps)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, key := range keys { // found changed before an error too: seen holds their stamps
			changed(key)
		}
		switch {
		case err == nil:
			version = now
		case isBusy(err) && ctx.Err() == nil:
			continue // another connection holds the lock: the next tick asks again
		default:
			return describe(ctx, err)
		}
	}
}

// notInMemory refuses a database held in memory, which the watch's connection would hold alone
// (its file name is empty).
func notInMemory(ctx context.Context, conn *sql.Conn) error {
	rows, err := conn.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return describe(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int
		var name, file string
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return err
		}
		if name == "main" && file == "" {
			return errors.New("an in-memory SQLite database cannot be watched: a watch holds a connection of its own, and the database has one; watch a database file")
		}
	}
	return describe(ctx, rows.Err())
}

// readAll reads the stamp of every token row, and returns, in order, the keys whose stamp changed
// since the last read, appeared or went. A read that fails part way returns the keys it found
// changed so far (and ss holds their new stamps), but none that went.
func (ss *stamps) readAll(ctx context.Context, conn *sql.Conn, query string) ([]string, error) {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, describe(ctx, err)
	}
	defer rows.Close()
	ss.begin()
	var keys []string
	var key, updatedAt sql.RawBytes
	var rowid, version int64
	for rows.Next() {
		if err := rows.Scan(&key, &rowid, &version, &updatedAt); err != nil {
			slices.Sort(keys)
			return keys, err
		}
		if ss.see(key, rowid, version, updatedAt) {
			keys = append(keys, string(key))
		}
	}
	if err := rows.Err(); err != nil {
		slices.Sort(keys)
		return keys, describe(ctx, err)
	}
	keys = append(keys, ss.end()...)
	slices.Sort(keys)
	return keys, nil
}
