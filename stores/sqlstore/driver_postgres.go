//go:build !sqlstore_nopostgres

package sqlstore

// The PostgreSQL driver Open uses (database/sql driver name "pgx"). Build with the tag
// sqlstore_nopostgres to leave it out of a program that uses SQLite alone.
import _ "github.com/jackc/pgx/v5/stdlib"
