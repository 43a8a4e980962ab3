package sqlstore

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/twitchoauth/twitchoauth/stores/sqlstore/internal/drivers"
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
// gives the connection back to the pool no longer listening, or has the pool close it. The
// LISTEN goes through pgx, which the package sqlstore/postgres links into the program.
func (s *Store) listen(ctx context.Context, channel string, changed func(string), watching func()) error {
	d, ok := drivers.Lookup(drivers.Postgres)
	if !ok || d.Listener == nil {
		return fmt.Errorf("LISTEN needs the pgx driver, which this program does not link: import _ %q", Postgres.driverPackage())
	}
	conn, err := s.DB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc, ok := d.Listener(dc)
		if !ok {
			return fmt.Errorf("LISTEN needs the pgx driver (github.com/jackc/pgx/v5/stdlib, driver name \"pgx\"); the DB's connections are %T", dc)
		}
		err := listenOn(ctx, pc, channel, changed, watching)
		if pc.IsClosed() {
			return fmt.Errorf("%w: %w", driver.ErrBadConn, err) // the pool drops it
		}
		stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlistenTimeout)
		defer cancel()
		if uerr := pc.Exec(stop, "UNLISTEN *"); uerr != nil {
			return fmt.Errorf("%w: %w (and UNLISTEN failed: %w)", driver.ErrBadConn, err, uerr)
		}
		return err
	})
}

// listenOn LISTENs on channel on pc, and reports notifications as listen says.
func listenOn(ctx context.Context, pc drivers.Listener, channel string, changed func(string), watching func()) error {
	if err := pc.Exec(ctx, `LISTEN "`+channel+`"`); err != nil { // a checked identifier: nothing to escape
		return describe(ctx, err)
	}
	watching()
	for {
		quiet, cancel := context.WithTimeout(ctx, listenCheck)
		nChannel, payload, ok, err := pc.WaitForNotification(quiet)
		cancel()
		switch {
		case err == nil && !ok:
			// The connection's own OnNotification took it, so its key is not known.
			changed("")
		case err == nil:
			if nChannel == channel { // not one buffered before an earlier UNLISTEN
				changed(payload)
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
