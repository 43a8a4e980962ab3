package redisstore

import (
	"context"
	"errors"
	"fmt"
	randv2 "math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Watching: how long a watch waits with nothing received before it pings Redis, and then for the
// answer before it takes the connection for lost and subscribes anew. A connection that fails
// loudly (a restarted server, a reset) is noticed at once; a silent one (a paused server, a
// network that drops everything) within twice this.
const defaultWatchPing = 2 * time.Second

// The waits between a watch's attempts to subscribe: the first, and the longest; each is
// jittered around its value.
const (
	firstWatchWait = 100 * time.Millisecond
	maxWatchWait   = 5 * time.Second
)

// changesChannel returns the Pub/Sub channel on which the store's writes publish the keys they
// change.
func (s *Store) changesChannel() string { return s.prefix() + "changes" }

// WatchChanges calls changed with the key of each token saved (Save, SaveIf) or deleted through
// any Store with the same Prefix on the same Redis, this one included, until ctx ends; it then
// returns an error that Is ctx's error.
//
// Each write publishes the key it changed (the store's key, as Load takes it, never a token) on
// the Pub/Sub channel Prefix+"changes", in the same Lua script as the write: a watcher hears of a
// write once it is made, and a Load that follows finds it. WatchChanges subscribes to that channel
// on a connection of its own. When Redis confirms the subscription, it calls changed(""): first
// once it watches, and again after every gap, a time in which it was not subscribed (the
// connection was lost, the server restarted), since Redis keeps no message for a subscriber that
// is away; the caller then loads again the keys it cares about and lists the store. It pings Redis
// after a time with nothing received, so that a connection that went silent is noticed within
// seconds; a server it cannot reach is tried again, waiting from 0.1 s, doubling, up to 5 s.
//
// It returns sooner only when Redis refuses the subscription (NOPERM: an ACL user without the
// channel), or at once on a *redis.Ring, whose shards each publish the changes of their own keys
// to their own subscribers. changed is called from the goroutine that called WatchChanges, one
// call at a time; it must not block for long, since messages wait for it. WatchChanges ends every
// goroutine it starts before it returns.
func (s *Store) WatchChanges(ctx context.Context, changed func(key string)) error {
	if _, ok := s.Client.(*redis.Ring); ok {
		return errors.New("redisstore: watch changes: not on a redis.Ring, whose shards each publish their own keys' changes")
	}
	wait := firstWatchWait
	for {
		watched, err := s.watch(ctx, changed)
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("redisstore: watch changes: %w", cerr)
		}
		if redis.HasErrorPrefix(err, "NOPERM") {
			return fmt.Errorf("redisstore: watch changes: subscribe to %s: %w", s.changesChannel(), err)
		}
		if watched {
			wait = firstWatchWait
		}
		t := time.NewTimer(wait/2 + randv2.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("redisstore: watch changes: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxWatchWait)
	}
}

// watch subscribes once and reports what arrives until the subscription is lost or ctx ends. It
// reports whether Redis confirmed the subscription, and what ended it.
func (s *Store) watch(ctx context.Context, changed func(key string)) (watched bool, err error) {
	ping := s.watchPing
	if ping <= 0 {
		ping = defaultWatchPing
	}
	ps := s.Client.Subscribe(ctx, s.changesChannel())
	// A read waits for a message or for ping, not for ctx: closing the subscription ends it once
	// ctx ends.
	stop := make(chan struct{})
	var closer sync.WaitGroup
	closer.Go(func() {
		select {
		case <-ctx.Done():
		case <-stop:
		}
		ps.Close()
	})
	defer closer.Wait()
	defer close(stop)

	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, ping)
		if err != nil {
			var nerr net.Error
			if !errors.As(err, &nerr) || !nerr.Timeout() || ctx.Err() != nil {
				return watched, err
			}
			if pinged {
				return watched, fmt.Errorf("no answer to a ping within %v", ping)
			}
			if err := ps.Ping(ctx); err != nil {
				return watched, err
			}
			pinged = true
			continue
		}
		pinged = false
		switch msg := msg.(type) {
		case *redis.Subscription:
			if msg.Kind == "subscribe" {
				watched = true
				changed("")
			}
		case *redis.Message:
			changed(msg.Payload)
		}
	}
}
