package twitchoauth

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

const scaleUsers = 10000

// TestUserTokensScale: 10,000 users, validated by one Run for two periods of the default hour
// (a synctest bubble compresses them) with the default MaxInFlight, while Twitch takes 50 ms to
// answer each validation: every user is validated exactly once per period, at its own slot; the
// validations are spread evenly over the period; never more than MaxInFlight are in flight; none
// fails; Run starts no goroutine per user, nor makes a source's state for a user it only
// validates; and the requests travel over connections (in memory,
// made by a transport set as the package's default one is) of which no more than MaxInFlight are
// open at once. (Over two hours more are opened in all: the transport closes one left idle for
// 90 s, and dials one when a request comes just before another's connection is free.)
func TestUserTokensScale(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test: 10,000 users")
	}
	synctest.Test(t, func(t *testing.T) {
		b := newRunBubble(t)
		pipes := servePipes(b.fake)
		defer pipes.close()
		b.tr.base = pipes.transport
		users := ids(scaleUsers)
		seedStore(t, b.fake, b.store, users)
		b.fake.Fail("validate", faketwitch.Fault{Pass: true, Delay: 50 * time.Millisecond})
		u := NewUserTokens(b.c, b.store)
		if err := u.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		const period = defaultValidateEvery
		goroutines := runtime.NumGoroutine()
		start := time.Now()
		stop := run(t, u)
		time.Sleep(period / 2)
		// Each open connection has three: the transport's reader and writer, and the server's;
		// and each request in flight one more, the server's read behind the handler.
		conns := 3*int(pipes.open.Load()) + int(b.tr.inFlight.Load())
		if n := runtime.NumGoroutine() - goroutines - conns; n > defaultMaxInFlight+3 {
			t.Errorf("Run keeps %d goroutines for %d users", n, scaleUsers)
		}
		time.Sleep(2*period - period/2 + time.Second) // validations begun before 2 periods end
		stop()
		end := start.Add(2 * period)
		// Validated users that did nothing else hold no more than they did when added.
		withState := 0
		for _, id := range users {
			if src, _ := u.Source(id); src.more.Load() != nil {
				withState++
			}
		}
		if withState != 0 {
			t.Errorf("%d of %d users hold a source state after being validated", withState, scaleUsers)
		}

		perMinute := make([]int, 120)
		for _, id := range users {
			times := b.tr.timesUntil(b.store.stored(id).AccessToken, end)
			for _, at := range times {
				if m := int(at.Sub(start) / time.Minute); m < len(perMinute) {
					perMinute[m]++
				}
			}
			if len(times) != 2 {
				t.Errorf("user %s validated %d times in 2 periods, want 2", id, len(times))
				continue
			}
			if times[0].Sub(start) > period {
				t.Errorf("user %s first validated after %v", id, times[0].Sub(start))
			}
			if gap := times[1].Sub(times[0]); gap < period-time.Second || gap > period+time.Second {
				t.Errorf("user %s: %v between validations, want %v", id, gap, period)
			}
		}
		busiest := 0
		for _, n := range perMinute {
			busiest = max(busiest, n)
		}
		mean := scaleUsers / 60
		t.Logf("%d users, 2 periods: busiest minute %d validations (mean %d), %d in flight at most, %d connections open at most (%d opened), %d failures",
			scaleUsers, busiest, mean, b.tr.maxSeen.Load(), pipes.maxOpen.Load(), pipes.dials.Load(), b.tr.failures.Load())
		if n := pipes.maxOpen.Load(); n > defaultMaxInFlight {
			t.Errorf("%d connections open at once, want at most MaxInFlight = %d", n, defaultMaxInFlight)
		}
		if busiest > mean*3/2 {
			t.Errorf("%d validations in one minute, mean %d: not spread evenly", busiest, mean)
		}
		if m := b.tr.maxSeen.Load(); m > defaultMaxInFlight {
			t.Errorf("%d requests in flight, want at most MaxInFlight = %d", m, defaultMaxInFlight)
		}
		if n := b.tr.failures.Load(); n != 0 {
			t.Errorf("%d failed requests", n)
		}
	})
}

// pipeServer serves a handler over in-memory connections (net.Pipe, which a synctest bubble
// allows), through an http.Server, and counts the connections its transport dials. The transport
// is the package's default one, dialing pipes.
type pipeServer struct {
	open, maxOpen atomic.Int64 // connections open now, and at most
	srv           *http.Server
	transport     *http.Transport
	conns         chan net.Conn
	done          chan struct{} // closed by close
	served        chan struct{} // closed when Serve has returned
	dials         atomic.Int64
}

// servePipes starts serving h; call close when done.
func servePipes(h http.Handler) *pipeServer {
	p := &pipeServer{srv: &http.Server{Handler: h}, conns: make(chan net.Conn), done: make(chan struct{}), served: make(chan struct{})}
	p.srv.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			n := p.open.Add(1)
			for m := p.maxOpen.Load(); n > m && !p.maxOpen.CompareAndSwap(m, n); m = p.maxOpen.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			p.open.Add(-1)
		}
	}
	p.transport = defaultHTTPClient.Transport.(*http.Transport).Clone()
	p.transport.Proxy = nil
	p.transport.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
		client, server := net.Pipe()
		select {
		case p.conns <- server:
			p.dials.Add(1)
			return client, nil
		case <-p.done:
			return nil, net.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	go func() {
		defer close(p.served)
		p.srv.Serve(p)
	}()
	return p
}

func (p *pipeServer) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// Close is the listener's: close ends the server.
func (p *pipeServer) Close() error   { return nil }
func (p *pipeServer) Addr() net.Addr { return pipeAddr{} }

// close stops the server and closes every connection.
func (p *pipeServer) close() {
	close(p.done)
	p.transport.CloseIdleConnections()
	p.srv.Close()
	<-p.served
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// countingServer serves the fake over loopback TCP, counting connections and the requests in
// flight at the server.
type countingServer struct {
	fake     *faketwitch.Server
	conns    atomic.Int64
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	failed   atomic.Int64
	ok       atomic.Int64
	want     int64
	reached  chan struct{} // closed when ok reaches want
}

func (s *countingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for m := s.maxSeen.Load(); n > m && !s.maxSeen.CompareAndSwap(m, n); m = s.maxSeen.Load() {
	}
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	s.fake.ServeHTTP(rec, r)
	if rec.status != http.StatusOK {
		if r.Context().Err() == nil {
			s.failed.Add(1)
		}
		return
	}
	if s.ok.Add(1) == s.want {
		close(s.reached)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// TestUserTokensScaleLoopback: 10,000 users over real loopback connections, Twitch answering
// each validation after 50 ms: Run keeps MaxInFlight requests in flight at most, opens no more
// connections than that (plus 2), and none fails. Over HTTP/1.1 it uses the package's default
// client; over HTTP/2 (TLS) all requests share one connection, where 10,000 streams at once made
// the server force the connection closed. The period is 80 s so that validations come at 125 a
// second, near the 160 a second that 8 in flight of 50 ms allow; each run ends after 1,000 of
// them (500 over HTTP/2). It reports the peak heap.
func TestUserTokensScaleLoopback(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test: 10,000 users")
	}
	for _, tc := range []struct {
		name  string
		http2 bool
		want  int64
	}{{"HTTP/1.1", false, 1000}, {"HTTP/2", true, 500}} {
		t.Run(tc.name, func(t *testing.T) {
			fake := faketwitch.New()
			cs := &countingServer{fake: fake, want: tc.want, reached: make(chan struct{})}
			srv := httptest.NewUnstartedServer(cs)
			srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
				if st == http.StateNew {
					cs.conns.Add(1)
				}
			}
			c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
			if tc.http2 {
				srv.EnableHTTP2 = true
				srv.StartTLS()
				c.HTTPClient = srv.Client() // trusts the server's certificate; speaks HTTP/2
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			c.AuthBaseURL = srv.URL + "/oauth2/"
			log, logs := captureLog()
			c.Logger = log

			store := newMemStore()
			seedStore(t, fake, store, ids(scaleUsers))
			fake.Fail("validate", faketwitch.Fault{Pass: true, Delay: 50 * time.Millisecond})
			u := NewUserTokens(c, store)
			u.ValidateEvery = 80 * time.Second
			if err := u.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			peak := sampleHeap(t)
			start := time.Now()
			stop := run(t, u)
			<-cs.reached
			stop()
			took := time.Since(start)
			t.Logf("%d validations in %v over %d connections, %d in flight at most, %d failures, peak heap %.1f MiB",
				cs.ok.Load(), took.Round(time.Millisecond), cs.conns.Load(), cs.maxSeen.Load(), cs.failed.Load(), float64(peak())/(1<<20))
			if m := cs.maxSeen.Load(); m > defaultMaxInFlight {
				t.Errorf("%d requests in flight at the server, want at most %d", m, defaultMaxInFlight)
			}
			if n := cs.conns.Load(); n > defaultMaxInFlight+2 {
				t.Errorf("%d connections opened, want at most %d", n, defaultMaxInFlight+2)
			}
			if n := cs.failed.Load(); n != 0 {
				t.Errorf("%d failed requests", n)
			}
			if out := logs.String(); containsLevel(out, "WARN") || containsLevel(out, "ERROR") {
				t.Errorf("Run reported failures:\n%s", out)
			}
		})
	}
}

// containsLevel reports whether a text log holds a record of level.
func containsLevel(out, level string) bool { return strings.Contains(out, "level="+level+" ") }

// sampleHeap samples the heap's size until the test ends, and returns the peak seen so far.
func sampleHeap(t *testing.T) (peak func() uint64) {
	var mu sync.Mutex
	var top uint64
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		mu.Lock()
		top = max(top, sample[0].Value.Uint64())
		mu.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			read()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() uint64 {
		read()
		mu.Lock()
		defer mu.Unlock()
		return top
	}
}

// liveHeap returns the heap in use after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestUserTokensMemory: a registered user costs at most 400 bytes besides the token itself (it
// cost 555 while each source was made apart from its entry, with its closures), with
// each user's source made and Run going, and Run holds no goroutine per user.
func TestUserTokensMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test: 10,000 users")
	}
	store := newMemStore()
	users := ids(scaleUsers)
	for _, id := range users {
		store.Save(t.Context(), id, &StoredToken{AccessToken: "access-token-" + id + "-0123456789abcdef", RefreshToken: "refresh-token-" + id + "-0123456789abcdefghijklmnopqrstuvwxyz",
			Expiry: time.Now().Add(4 * time.Hour), Scopes: []Scope{ScopeChatRead, ScopeChatEdit}, UserID: id, Login: "user" + id, ClientID: "cid",
			Intents: []string{"chatbot:" + id}})
	}
	base := liveHeap()
	toks := make([]*oauth2.Token, len(users))
	for i, id := range users {
		toks[i] = store.stored(id).Token()
	}
	perToken := float64(liveHeap()-base) / scaleUsers
	runtime.KeepAlive(toks)
	toks = nil
	base = liveHeap()

	c := NewClient("cid", "secret")
	c.AuthBaseURL = "http://127.0.0.1:1/oauth2/" // nothing listens: a slot that comes due fails and is retried
	u := NewUserTokens(c, store)
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range users {
		if _, err := u.Source(id); err != nil {
			t.Fatal(err)
		}
	}
	goroutines := runtime.NumGoroutine()
	stop := run(t, u)
	defer stop()
	perUser := float64(liveHeap()-base)/scaleUsers - perToken
	extra := runtime.NumGoroutine() - goroutines
	t.Logf("%d users: %.0f bytes each beyond the token (%.0f bytes), %d goroutines for Run", scaleUsers, perUser, perToken, extra)
	if perUser > 400 {
		t.Errorf("%.0f bytes per user beyond the token, want at most 400", perUser)
	}
	if extra > defaultMaxInFlight+3 {
		t.Errorf("Run holds %d goroutines for %d users", extra, scaleUsers)
	}
	runtime.KeepAlive(u)
}

// TestUserTokensMassRefreshConnections: 10,000 users whose tokens expired together, all asked for
// at once through the package's default HTTP client: each refreshed once, over at most 64
// connections to Twitch, where one per concurrent refresh (thousands, each a TLS handshake against
// id.twitch.tv) was opened before.
func TestUserTokensMassRefreshConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test: 10,000 users")
	}
	c, fake := newTestClient(t) // HTTPClient nil: the package's default
	store := newMemStore()
	users := ids(scaleUsers)
	seedStore(t, fake, store, users)
	for _, id := range users {
		st := store.stored(id)
		st.Expiry = time.Now().Add(-time.Minute)
		store.Save(t.Context(), id, st)
	}
	u := NewUserTokens(c, store)
	if err := u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := fake.Connections()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for _, id := range users {
		wg.Go(func() {
			src, err := u.Source(id)
			if err == nil {
				_, err = src.Token()
			}
			if err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	conns := fake.Connections() - before
	t.Logf("%d refreshes over %d connections", fake.CountGrant("refresh_token"), conns)
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d users failed", n, scaleUsers)
	}
	if n := fake.CountGrant("refresh_token"); n != scaleUsers {
		t.Errorf("%d refreshes, want %d", n, scaleUsers)
	}
	// At most 64 are open at once; counted as the fake accepts them, a connection closed mid-run
	// (evicted from the idle pool the package's other tests share, or closed by the server as a
	// request was sent on it) is dialed again, and counts twice. An eighth more allows for that;
	// without the limit, thousands are dialed.
	if slack := maxConnsPerHost / 8; conns > maxConnsPerHost+slack {
		t.Errorf("%d connections to Twitch, want at most %d (and %d dialed again)", conns, maxConnsPerHost, slack)
	}
}
