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
	seen, err := readStamps(ctx, conn, q.stamps)
	if err != nil {
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
		var cur map[string]stamp
		if err == nil {
			cur, err = readStamps(ctx, conn, q.stamps)
		}
		switch {
		case err == nil:
		case isBusy(err) && ctx.Err() == nil:
			continue // another connection holds the lock: the next tick asks again
		default:
			return describe(ctx, err)
		}
		version = now
		for _, key := range changedKeys(seen, cur) {
			changed(key)
		}
		seen = cur
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

// readStamps returns the stamp of every token row, by key.
func readStamps(ctx context.Context, conn *sql.Conn, query string) (map[string]stamp, error) {
	rows, err := conn.QueryContext(ctx, query)
	if err != nil {
		return nil, describe(ctx, err)
	}
	defer rows.Close()
	out := make(map[string]stamp)
	for rows.Next() {
		var key string
		var st stamp
		if err := rows.Scan(&key, &st.rowid, &st.version, &st.updatedAt); err != nil {
			return nil, err
		}
		out[key] = st
	}
	if err := rows.Err(); err != nil {
		return nil, describe(ctx, err)
	}
	return out, nil
}

// changedKeys returns, in order, the keys whose stamp differs between old and cur: saved,
// deleted, or both.
func changedKeys(old, cur map[string]stamp) []string {
	var keys []string
	for k, st := range cur {
		if was, ok := old[k]; !ok || was != st {
			keys = append(keys, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
