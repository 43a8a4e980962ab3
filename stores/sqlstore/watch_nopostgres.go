//go:build sqlstore_nopostgres

package sqlstore

import (
	"context"
	"errors"
)

// listen cannot LISTEN: the build leaves out the pgx driver, through which it would.
func (s *Store) listen(context.Context, string, func(string), func()) error {
	return errors.New("LISTEN needs the pgx driver (github.com/jackc/pgx/v5/stdlib), which the build tag sqlstore_nopostgres leaves out")
}
