package redisstore

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// The tests of WatchChanges under faults (a server killed and restarted, a connection cut, a
// server that goes silent) watch through a client whose dials the test sees and can hold: a dial
// shows that the watch noticed the fault and subscribes anew, and holding it keeps the watch away
// while the test changes tokens, so that the changes surely fall in the gap.

// dialGate is the dialer of a watching client: it reports each dial, and holds dials while it is
// held.
type dialGate struct {
	dialed chan struct{} // a value per dial; dropped when one is already waiting

	mu   sync.Mutex
	open chan struct{} // closed while dials pass
}

// gatedStore returns a Store on a client of its own on addr whose dials go through the returned
// gate, open at first; the client is closed when the test ends.
func gatedStore(t *testing.T, addr string) (*Store, *dialGate) {
	t.Helper()
	g := &dialGate{dialed: make(chan struct{}, 1), open: make(chan struct{})}
	close(g.open)
	rdb := redis.NewClient(&redis.Options{Addr: addr, Dialer: g.dial})
	t.Cleanup(func() { rdb.Close() })
	return New(rdb), g
}

func (g *dialGate) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	select {
	case g.dialed <- struct{}{}:
	default:
	}
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// hold makes dials wait until release; the test's end releases them too. Call it after
// storetest.Watch, so that the release comes before the watch is stopped.
func (g *dialGate) hold(t *testing.T) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Forget the dials made so far.
	select {
	case <-g.dialed:
	default:
	}
	g.open = make(chan struct{})
	t.Cleanup(g.release)
}

// release lets dials pass again.
func (g *dialGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// waitDial waits until the client dials, failing the test after storetest.WatchTimeout.
func (g *dialGate) waitDial(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.dialed:
	case <-time.After(storetest.WatchTimeout):
		t.Fatalf("the watch did not connect anew within %v after %s", storetest.WatchTimeout, what)
	}
}

// saveKey saves a token under key, failing the test on an error.
func saveKey(t *testing.T, store *Store, key string) {
	t.Helper()
	if err := store.Save(t.Context(), key, &twitchoauth.StoredToken{AccessToken: "a-" + key, RefreshToken: "r-" + key}); err != nil {
		t.Fatalf("save %s: %v", key, err)
	}
}

// wantStored checks that store holds the tokens saveKey saved under keys: what a watcher that
// heard "" loads again.
func wantStored(t *testing.T, store *Store, keys ...string) {
	t.Helper()
	for _, key := range keys {
		st, err := store.Load(t.Context(), key)
		if err != nil || st.AccessToken != "a-"+key {
			t.Errorf("Load(%s) once the watch is back: %v; want the token saved", key, err)
		}
	}
}

// testGap runs a watch through a gated client on addr, makes a fault with down, waits until the
// watch notices it (it dials anew), and holds its dials while up ends the fault and writer saves a
// token, which the watch cannot hear of. Once released, the watch reports "", after which Load
// finds the token saved in the gap; and it reports the changes made after that.
func testGap(t *testing.T, watchAddr string, writer *Store, watchPing time.Duration, down, up func()) {
	watcher, gate := gatedStore(t, watchAddr)
	watcher.watchPing = watchPing
	w := storetest.Watch(t, watcher)
	saveKey(t, writer, "before")
	w.Want(t, "before")

	gate.hold(t)
	down()
	gate.waitDial(t, "the fault")
	up()
	saveKey(t, writer, "meanwhile")
	gate.release()
	w.Want(t, "")
	wantStored(t, watcher, "before", "meanwhile")
	saveKey(t, writer, "after")
	w.Want(t, "after")
	if err := writer.Delete(t.Context(), "before"); err != nil {
		t.Fatal(err)
	}
	w.Want(t, "before")
}

// TestWatchServerRestarted: Redis, with AOF, is killed (SIGKILL) under a watch and started again
// on the same port and directory; a token saved after the restart and before the watch is back is
// followed by "" once it is, and later changes are reported again.
func TestWatchServerRestarted(t *testing.T) {
	t.Parallel()
	srv, port, dir := startOwnRedis(t, true)
	writer := New(newClient(t, srv.Addr))
	testGap(t, srv.Addr, writer, 0, srv.Stop, func() {
		if _, err := startRedisIn(t, port, dir, true); err != nil {
			t.Fatalf("restart redis-server on the same port and directory: %v", err)
		}
	})
}

// TestWatchConnectionCut: the watch's connection is cut (reset) by a TCP proxy, and the proxy
// refuses it until healed; a token saved meanwhile is followed by "" once the watch is back, and
// later changes are reported again.
func TestWatchConnectionCut(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	proxy := storetest.StartProxy(t, srv.Addr)
	writer := New(newClient(t, srv.Addr))
	testGap(t, proxy.Addr, writer, 0, proxy.Cut, proxy.Heal)
}

// TestWatchServerPaused: Redis stops (SIGSTOP) and its connections go silent, with nothing to
// tell the watch that its connection is lost: the watch pings, gets no answer and subscribes
// anew; once Redis resumes, a token saved meanwhile is followed by "", and later changes are
// reported again.
func TestWatchServerPaused(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	writer := New(newClient(t, srv.Addr))
	var resume func()
	testGap(t, srv.Addr, writer, 100*time.Millisecond, func() { resume = srv.pause(t) }, func() { resume() })
}

// TestWatchNoChannelPermission: an ACL user without the store's channel saves and deletes as
// before (the refused PUBLISH does not fail the write), and its WatchChanges returns Redis's
// NOPERM at once rather than retry forever.
func TestWatchNoChannelPermission(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	admin := newClient(t, srv.Addr)
	if err := admin.Do(t.Context(), "ACL", "SETUSER", "bot", "on", ">pw", "~*", "resetchannels", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "bot", Password: "pw"})
	t.Cleanup(func() { rdb.Close() })
	store := New(rdb)
	saveKey(t, store, "k")
	wantStored(t, store, "k")
	if err := store.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), storetest.WatchTimeout)
	defer cancel()
	err := store.WatchChanges(ctx, func(key string) { t.Errorf("changed(%q) without a subscription", key) })
	if err == nil || ctx.Err() != nil || !redis.HasErrorPrefix(err, "NOPERM") {
		t.Errorf("WatchChanges without the channel's permission: %v (context: %v); want NOPERM at once", err, ctx.Err())
	}
}

// TestWatchRing: a Store on a redis.Ring cannot be watched (each shard publishes its own keys'
// changes): WatchChanges says so at once.
func TestWatchRing(t *testing.T) {
	t.Parallel()
	srv := startRedis(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": srv.Addr}})
	t.Cleanup(func() { ring.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), storetest.WatchTimeout)
	defer cancel()
	if err := New(ring).WatchChanges(ctx, func(string) {}); err == nil || ctx.Err() != nil {
		t.Errorf("WatchChanges on a Ring: %v (context: %v); want an error at once", err, ctx.Err())
	}
}

// BenchmarkWatchLatency measures the time from the start of one client's Save to another client's
// changed(key), one save at a time, and reports its median and 99th percentile (run it with
// -benchtime=1000x for 1,000 saves).
func BenchmarkWatchLatency(b *testing.B) {
	srv := startRedis(b)
	writer, watcher := New(newClient(b, srv.Addr)), New(newClient(b, srv.Addr))
	type heard struct {
		key string
		at  time.Time
	}
	heardc := make(chan heard, 1)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() {
		done <- watcher.WatchChanges(ctx, func(key string) { heardc <- heard{key, time.Now()} })
	}()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			b.Errorf("WatchChanges returned %v once its context ended", err)
		}
	}()
	next := func() heard {
		select {
		case h := <-heardc:
			return h
		case err := <-done:
			b.Fatalf("WatchChanges returned %v", err)
		case <-time.After(storetest.WatchTimeout):
			b.Fatalf("no change reported within %v", storetest.WatchTimeout)
		}
		return heard{}
	}
	if h := next(); h.key != "" {
		b.Fatalf("first changed(%q), want the empty key", h.key)
	}
	tok := &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r"}
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := writer.Save(b.Context(), "bench", tok); err != nil {
			b.Fatal(err)
		}
		h := next()
		if h.key != "bench" {
			b.Fatalf("changed(%q), want the key saved", h.key)
		}
		lat = append(lat, h.at.Sub(start))
	}
	slices.Sort(lat)
	at := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond) }
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
