//go:build !sqlstore_nosqlite

package sqlstore

// The SQLite driver Open uses (database/sql driver name "sqlite"), in pure Go: no cgo. Build with
// the tag sqlstore_nosqlite to leave it out of a program that uses PostgreSQL alone.
import _ "modernc.org/sqlite"
