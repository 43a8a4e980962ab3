package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twitchoauth/twitchoauth"
)

// row is a tokens row as read.
type row struct {
	token   string
	sealed  []byte
	keyID   sql.NullString
	version int64
}

// read returns key's row; its error Is sql.ErrNoRows when there is none.
func (s *Store) read(ctx context.Context, q *queries, key string) (*row, error) {
	var r row
	if err := s.queryRow(ctx, q.load, []any{key}, &r.token, &r.sealed, &r.keyID, &r.version); err != nil {
		return nil, err
	}
	return &r, nil
}

// Load returns the token stored under key. The error Is [twitchoauth.ErrTokenNotFound] when there
// is no row, [twitchoauth.ErrTokenCorrupt] when the row holds no token (it is never quoted in the
// error), and [ErrCannotUnseal] when it is sealed and the Keyring cannot open it; any other error
// is the database's, such as a refused connection.
func (s *Store) Load(ctx context.Context, key string) (*twitchoauth.StoredToken, error) {
	q, err := s.queries(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.read(ctx, q, key)
	if errors.Is(err, sql.ErrNoRows) {
		s.seen.Delete(key)
		return nil, fmt.Errorf("%w: no row for key %s", twitchoauth.ErrTokenNotFound, twitchoauth.QuoteKey(key))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: load token: %w", err)
	}
	st, err := s.decode(key, r)
	if err == nil {
		s.remember(key, r, st)
	}
	return st, err
}

// knownRow is a row as this Store last read or wrote it, and its token: a SaveIf of a token that
// matches it updates the row without reading it first, if the row still holds those bytes.
type knownRow struct {
	row
	st *twitchoauth.StoredToken
}

// remember notes that key's row is r, which holds st.
func (s *Store) remember(key string, r *row, st *twitchoauth.StoredToken) {
	s.seen.Store(key, &knownRow{*r, st})
}

// saveSeen is SaveIf without a read, for a prev that matches the row this Store last saw: the
// update is made only where the row still has that version and those bytes. It reports whether
// it made it; when it did not (the row changed since), SaveIf reads the row. With a holder, the
// update releases that holder's lock (see update).
func (s *Store) saveSeen(ctx context.Context, q *queries, key, holder string, prev, next *twitchoauth.StoredToken, token string, sealed, keyID any) (bool, error) {
	v, ok := s.seen.Load(key)
	if !ok {
		return false, nil
	}
	seen := v.(*knownRow)
	if !seen.st.Matches(prev) {
		return false, nil
	}
	n, err := s.update(ctx, q, q.saveIfSeen, q.saveIfSeenUnlock, holder, key, seen.version, token, sealed, keyID, seen.token, seen.sealed)
	if err != nil {
		return false, fmt.Errorf("sqlstore: save token: %w", err)
	}
	if n == 1 {
		s.rememberWritten(key, seen.version+1, token, sealed, keyID, next)
	}
	return n == 1, nil
}

// rememberWritten notes that key's row is now at version, holding token, sealed and keyID (as
// encode made them), which are next.
func (s *Store) rememberWritten(key string, version int64, token string, sealed, keyID any, next *twitchoauth.StoredToken) {
	r := row{token: token, version: version}
	if b, ok := sealed.([]byte); ok {
		r.sealed = b
	}
	if id, ok := keyID.(string); ok {
		r.keyID = sql.NullString{String: id, Valid: true}
	}
	st := *next
	s.remember(key, &r, &st)
}

// decode reads a row's token. Its errors describe what is wrong without quoting the row, which
// may hold a token. A token whose JSON, with its pair unsealed, is larger than
// [twitchoauth.MaxStoredTokenSize] is corrupt, as it is when Save refuses it.
func (s *Store) decode(key string, r *row) (*twitchoauth.StoredToken, error) {
	// The JSON holds the sealed pair's JSON, and more: a sealed value longer than the limit's
	// and the seal's overhead makes a token over the limit, and is not opened.
	if len(r.token) > twitchoauth.MaxStoredTokenSize || len(r.sealed) > twitchoauth.MaxStoredTokenSize+twitchoauth.SealOverhead {
		return nil, fmt.Errorf("%w: the row of key %s holds %d bytes, more than the %d of a token", twitchoauth.ErrTokenCorrupt, twitchoauth.QuoteKey(key), len(r.token)+len(r.sealed), twitchoauth.MaxStoredTokenSize)
	}
	data := []byte(r.token)
	switch {
	case r.sealed == nil && !r.keyID.Valid:
	case r.sealed == nil || !r.keyID.Valid:
		return nil, fmt.Errorf("%w: the row of key %s has a sealed value without a key ID, or a key ID without one", twitchoauth.ErrTokenCorrupt, twitchoauth.QuoteKey(key))
	default:
		var err error
		if data, err = s.openRow(key, r.keyID.String, r.sealed, data); err != nil {
			return nil, fmt.Errorf("sqlstore: %w", err) // it names the key
		}
		if len(data) > twitchoauth.MaxStoredTokenSize {
			return nil, fmt.Errorf("%w: the token of the row of key %s is %d bytes unsealed, more than the %d of a token", twitchoauth.ErrTokenCorrupt, twitchoauth.QuoteKey(key), len(data), twitchoauth.MaxStoredTokenSize)
		}
	}
	st, err := twitchoauth.DecodeStoredToken(data)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: row of key %s: %w", twitchoauth.QuoteKey(key), err)
	}
	return st, nil
}

// encode returns the values of a row holding tok: the token file's JSON, and when the Store has a
// Keyring, the sealed pair and the ID of the key that sealed it (the JSON then holds an empty
// pair). Unsealed, sealed and keyID are nil. A token whose JSON (before sealing) is larger than
// [twitchoauth.MaxStoredTokenSize] is refused with an error that gives its size, never its
// contents.
func (s *Store) encode(key string, tok *twitchoauth.StoredToken) (token string, sealed, keyID any, err error) {
	if tok == nil {
		return "", nil, nil, errors.New("nil token")
	}
	data, err := json.Marshal(tok)
	if err != nil {
		return "", nil, nil, err
	}
	if len(data) > twitchoauth.MaxStoredTokenSize {
		return "", nil, nil, fmt.Errorf("the token's JSON is %d bytes, more than the %d a store takes", len(data), twitchoauth.MaxStoredTokenSize)
	}
	if s.Keyring == nil {
		return string(data), nil, nil, nil
	}
	clear := *tok
	clear.AccessToken, clear.RefreshToken = "", ""
	data, err = json.Marshal(&clear)
	if err != nil {
		return "", nil, nil, err
	}
	id, box, err := s.Keyring.Seal(key, tok.AccessToken, tok.RefreshToken)
	if err != nil {
		return "", nil, nil, err
	}
	return string(data), box, id, nil
}

// Save stores tok under key with one upsert (INSERT ... ON CONFLICT DO UPDATE), replacing what was
// there and adding one to the row's version: a reader sees the old token or the new one, never a
// mix. A token whose JSON is larger than [twitchoauth.MaxStoredTokenSize] (the JSON of the whole
// token, before any sealing) is refused, and nothing is written; SaveIf refuses it too.
func (s *Store) Save(ctx context.Context, key string, tok *twitchoauth.StoredToken) error {
	q, err := s.queries(ctx)
	if err != nil {
		return err
	}
	token, sealed, keyID, err := s.encode(key, tok)
	if err != nil {
		return fmt.Errorf("sqlstore: save token: %w", err)
	}
	s.seen.Delete(key) // its version is not known
	if _, err := s.exec(ctx, q.save, key, token, sealed, keyID); err != nil {
		return fmt.Errorf("sqlstore: save token: %w", err)
	}
	return nil
}

// SaveIf stores next under key, as Save does, only if the stored token still holds prev's access
// and refresh tokens and its spending mark (the same Spending.Refresh and Spending.Holder, or no
// mark when prev has none). It reads the row with its version, compares (a sealed row once
// opened), and updates the row only where its version is still the one read (UPDATE ... WHERE key
// = $1 AND version = $2). A write in between, by anyone, makes the update change no row; the row is
// then read and compared again (a few times), so that a write that kept the pair and the mark (a
// Reseal, a validation's save) does not fail it. When the tokens differ, or no readable token is
// stored, it stores nothing and the error Is [twitchoauth.ErrTokenChanged]. A sealed row the
// Keyring cannot open is an error that Is [ErrCannotUnseal], not a change. Any other error is the
// database's.
func (s *Store) SaveIf(ctx context.Context, key string, prev, next *twitchoauth.StoredToken) error {
	return s.saveIf(ctx, key, "", prev, next)
}

// saveIf is SaveIf; with a holder, the write that stores next also releases key's lock held as
// holder (see update), and a SaveIf that stores nothing leaves the lock as it was.
func (s *Store) saveIf(ctx context.Context, key, holder string, prev, next *twitchoauth.StoredToken) error {
	if prev == nil || next == nil {
		return errors.New("sqlstore: save token: SaveIf needs the token it replaces and a new one")
	}
	q, err := s.queries(ctx)
	if err != nil {
		return err
	}
	token, sealed, keyID, err := s.encode(key, next)
	if err != nil {
		return fmt.Errorf("sqlstore: save token: %w", err)
	}
	if done, err := s.saveSeen(ctx, q, key, holder, prev, next, token, sealed, keyID); done || err != nil {
		return err
	}
	for range saveIfReads {
		r, err := s.read(ctx, q, key)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: no row for key %s", twitchoauth.ErrTokenChanged, twitchoauth.QuoteKey(key))
		}
		if err != nil {
			return fmt.Errorf("sqlstore: save token: %w", err)
		}
		cur, err := s.decode(key, r)
		switch {
		case errors.Is(err, twitchoauth.ErrTokenCorrupt):
			return fmt.Errorf("%w: %w", twitchoauth.ErrTokenChanged, err)
		case err != nil:
			return err
		case !cur.Matches(prev):
			return fmt.Errorf("%w: the row of key %s holds another pair", twitchoauth.ErrTokenChanged, twitchoauth.QuoteKey(key))
		}
		n, err := s.update(ctx, q, q.saveIf, q.saveIfUnlock, holder, key, r.version, token, sealed, keyID)
		if err != nil {
			return fmt.Errorf("sqlstore: save token: %w", err)
		}
		if n == 1 {
			s.rememberWritten(key, r.version+1, token, sealed, keyID, next)
			return nil
		}
	}
	return fmt.Errorf("%w: the row of key %s kept being written while it was compared", twitchoauth.ErrTokenChanged, twitchoauth.QuoteKey(key))
}

// update runs query, a fenced UPDATE of key's token row whose first parameter is key, and returns
// how many rows it changed. With a holder, the change also releases key's lock held as holder, in
// the same commit: on PostgreSQL with unlocking, query's form that deletes the lock row in its own
// statement; on SQLite in one transaction. The lock row is deleted only when the token row was
// updated: an update that changed nothing leaves the lock held.
func (s *Store) update(ctx context.Context, q *queries, query, unlocking, holder string, args ...any) (int64, error) {
	if holder == "" {
		res, err := s.exec(ctx, query, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	if s.Dialect == Postgres {
		res, err := s.exec(ctx, unlocking, append(args, holder)...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	var n int64
	err := s.write(ctx, func() error {
		// Prepared before the transaction takes its connection: in a pool of one (":memory:",
		// or a program's SetMaxOpenConns(1)), preparing in it would wait for a second one.
		save, unlock := s.prepared(ctx, query), s.prepared(ctx, q.unlock)
		tx, err := s.DB.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		res, err := txExec(ctx, tx, save, query, args...)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		if _, err := txExec(ctx, tx, unlock, q.unlock, args[0], holder); err != nil {
			return err
		}
		return tx.Commit()
	})
	return n, err
}

// txExec runs query in tx: as st, its prepared form, when there is one.
func txExec(ctx context.Context, tx *sql.Tx, st *sql.Stmt, query string, args ...any) (sql.Result, error) {
	if st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// saveIfReads is how many times SaveIf reads a row that is written between its read and its
// update before it gives up.
const saveIfReads = 5

// Delete removes key's row; a key with no row is not an error. A lock held on the key stays until
// its holder releases it or its lease ends; a lock row whose lease has ended goes with the token.
func (s *Store) Delete(ctx context.Context, key string) error {
	q, err := s.queries(ctx)
	if err != nil {
		return err
	}
	s.seen.Delete(key)
	if _, err := s.exec(ctx, q.delete, key); err != nil {
		return fmt.Errorf("sqlstore: delete token: %w", err)
	}
	if _, err := s.exec(ctx, q.deleteLock, key); err != nil {
		return fmt.Errorf("sqlstore: delete the ended lock of a deleted token: %w", err)
	}
	return nil
}

// Keys returns the key of every row of the tokens table, in no particular order: one SELECT,
// read as it streams. A key saved or deleted while it runs may or may not be listed.
func (s *Store) Keys(ctx context.Context) ([]string, error) {
	q, err := s.queries(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := s.queryStrings(ctx, q.keys)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list tokens: %w", err)
	}
	return keys, nil
}
