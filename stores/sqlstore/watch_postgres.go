//go:build !sqlstore_nopostgres

package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// A LISTEN connection quiet for listenCheck is checked with an empty statement, answered within
// listenCheckTimeout or taken for lost. UNLISTEN, as the watch ends, is given unlistenTimeout;
// a connection that does not answer it is closed rather than given back to the pool.
const (
	listenCheck        = 30 * time.Second
	listenCheckTimeout = 10 * time.Second
	unlistenTimeout    = 5 * time.Second
)

// listen takes a connection of DB, LISTENs on channel, calls watching once it listens, and then
// changed with the payload of each notification, until ctx ends or the connection is lost. It
// gives the connection back to the pool no longer listening, or has the pool close it.
func (s *Store) listen(ctx context.Context, channel string, changed func(string), watching func()) error {
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("LISTEN needs the pgx driver (github.com/jackc/pgx/v5/stdlib, driver name \"pgx\"); the DB's connections are %T", dc)
		}
		pc := sc.Conn()
		err := listenOn(ctx, pc, channel, changed, watching)
		if pc.IsClosed() {
			return fmt.Errorf("%w: %w", driver.ErrBadConn, err) // the pool drops it
		}
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlistenTimeout)
		defer cancel()
		if _, uerr := pc.Exec(stop, "UNLISTEN *"); uerr != nil {
			return fmt.Errorf("%w: %w (and UNLISTEN failed: %w)", driver.ErrBadConn, err, uerr)
		}
		return err
	})
}

// listenOn LISTENs on channel on pc, and reports notifications as listen says.
func listenOn(ctx context.Context, pc *pgx.Conn, channel string, changed func(string), watching func()) error {
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return describe(ctx, err)
	}
	watching()
	for {
		quiet, cancel := context.WithTimeout(ctx, listenCheck)
		n, err := pc.WaitForNotification(quiet)
		cancel()
		switch {
		case err == nil && n == nil:
			// The connection's own OnNotification took it, so its key is not known.
			changed("")
		case err == nil:
			if n.Channel == channel { // not one buffered before an earlier UNLISTEN
				changed(n.Payload)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !pc.IsClosed():
			check, cancel := context.WithTimeout(ctx, listenCheckTimeout)
			err := pc.Ping(check)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("%w: the LISTEN connection, quiet for %v, did not answer a check: %w", errConnLost, listenCheck, err)
			}
		default:
			return describe(ctx, err)
		}
	}
}
