package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	// shutdownTimeout bounds how long closing the redirect server waits for requests in flight.
	shutdownTimeout = time.Second
	// portAttempts is how many free ports listen tries, with Port 0, to find one that is free on
	// every loopback address.
	portAttempts = 5
	// maxCallbackParam caps the code and the state of a redirect. Twitch's codes are 30
	// characters, and our states are a UUID or a 26-character random text (a caller's own
	// UserAuthenticator.State may be longer, and is allowed for).
	maxCallbackParam = 512
	// maxCallbackQuery caps a redirect's query, which Twitch fills with the code, the state and the
	// scopes granted: 2.2 KB when they are all of them.
	maxCallbackQuery = 8 << 10
)

// localServer is the redirect server of one Authenticate: one http.Server on a listener per address.
type localServer struct {
	lns  []net.Listener
	port int
	srv  *http.Server
	wg   sync.WaitGroup // the Serve loops

	mu      sync.Mutex
	conns   map[net.Conn]http.ConnState // every open connection and its state
	changed chan struct{}               // closed, and set to nil, when a state changes

	closeOnce sync.Once
}

// listen binds port on every address of host (see UserAuthenticator.Host). With port 0 the first
// listener picks a free port and the others take the same one; when another address has it taken,
// it tries again with a new port, portAttempts times in all.
func listen(ctx context.Context, host string, port int) (*localServer, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("twitchoauth: Port %d is not a TCP port", port)
	}
	addrs, localhost, err := listenAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		lns, bound, err := bindAll(ctx, addrs, localhost, port)
		switch {
		case err == nil:
			return &localServer{lns: lns, port: bound, conns: map[net.Conn]http.ConnState{}}, nil
		case !errors.Is(err, syscall.EADDRINUSE):
			return nil, fmt.Errorf("twitchoauth: listen: %w", err)
		case port != 0:
			return nil, fmt.Errorf("twitchoauth: port %d is already in use: another program, or another "+
				"login, is listening on it. Stop it, or set UserAuthenticator.Port to another port and "+
				"register the matching redirect URL (Port 0 with URL \"\" picks a free one): %w", port, err)
		case attempt == portAttempts:
			return nil, fmt.Errorf("twitchoauth: no port was free on every address of %q after %d tries: %w",
				host, portAttempts, err)
		}
	}
}

// bareHost returns host without the brackets of an IPv6 literal or a fully qualified name's dot.
func bareHost(host string) string {
	return strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
}

// listenAddrs returns the addresses to listen on for host. For "localhost" (or "") they are
// 127.0.0.1, ::1 and any other loopback address the resolver gives: browsers resolve localhost
// themselves and may pick either family, whatever /etc/hosts says. Then localhost is true, and an
// address the machine lacks (no IPv6) is skipped when binding.
func listenAddrs(ctx context.Context, host string) (addrs []netip.Addr, localhost bool, err error) {
	h := bareHost(host)
	if h == "" || strings.EqualFold(h, "localhost") {
		addrs = []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()}
		if ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", "localhost"); err == nil {
			for _, ip := range ips {
				if ip = ip.Unmap(); ip.IsLoopback() && !slices.Contains(addrs, ip) {
					addrs = append(addrs, ip)
				}
			}
		}
		return addrs, true, nil
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		return []netip.Addr{ip.Unmap()}, false, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", h)
	if err != nil {
		return nil, false, fmt.Errorf("twitchoauth: resolve Host %q: %w", host, err)
	}
	for _, ip := range ips {
		if ip = ip.Unmap(); !slices.Contains(addrs, ip) {
			addrs = append(addrs, ip)
		}
	}
	return addrs, false, nil
}

// bindAll listens on port at each address and returns the listeners and the port bound. With
// skipMissing, an address the machine does not have is left out.
func bindAll(ctx context.Context, addrs []netip.Addr, skipMissing bool, port int) ([]net.Listener, int, error) {
	var lc net.ListenConfig
	var lns []net.Listener
	for _, ip := range addrs {
		network := "tcp6"
		if ip.Is4() {
			network = "tcp4"
		}
		ln, err := lc.Listen(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String())
		if err != nil {
			if skipMissing && isAddrMissing(err) {
				continue
			}
			closeAll(lns)
			return nil, 0, err
		}
		if port == 0 {
			port = ln.Addr().(*net.TCPAddr).Port
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		return nil, 0, errors.New("no loopback address to listen on")
	}
	return lns, port, nil
}

// isAddrMissing reports whether a listen failed because the machine lacks the address or its
// family, as ::1 on a machine without IPv6.
func isAddrMissing(err error) bool {
	return errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT) ||
		errors.Is(err, syscall.EPROTONOSUPPORT)
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// serve starts serving h on every listener. Handlers get request contexts derived from ctx.
func (s *localServer) serve(ctx context.Context, h http.Handler) {
	s.srv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState:         s.trackConn,
		ErrorLog:          log.New(io.Discard, "", 0), // its lines may quote what a stranger sent
	}
	for _, ln := range s.lns {
		s.wg.Go(func() { s.srv.Serve(ln) })
	}
}

// trackConn keeps the state of every open connection, for close.
func (s *localServer) trackConn(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == http.StateClosed || st == http.StateHijacked {
		delete(s.conns, c)
	} else {
		s.conns[c] = st
	}
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// waitConns waits until done holds of the connections' states, or ctx ends.
func (s *localServer) waitConns(ctx context.Context, done func(map[net.Conn]http.ConnState) bool) {
	for {
		s.mu.Lock()
		if done(s.conns) {
			s.mu.Unlock()
			return
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// close stops the server, even when ctx is done: no new connection is accepted, the ones that have
// not sent a request yet are dropped (browsers open spare ones, which http.Server.Shutdown would
// wait 5 s for), requests in flight get shutdownTimeout to finish, and idle connections are closed.
// When it returns, the Serve loops have ended and every connection is closed, its goroutine on its
// last lines. It may be called more than once.
//
// It watches the connections' states instead of leaving the waiting to Shutdown, which polls.
func (s *localServer) close(ctx context.Context) {
	s.closeOnce.Do(func() {
		closeAll(s.lns)
		s.wg.Wait() // every connection accepted has been seen by trackConn
		if s.srv == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		s.mu.Lock()
		for c, st := range s.conns {
			if st == http.StateNew {
				c.Close()
			}
		}
		s.mu.Unlock()
		s.waitConns(ctx, func(conns map[net.Conn]http.ConnState) bool {
			for _, st := range conns {
				if st != http.StateIdle {
					return false
				}
			}
			return true
		})
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
		}
		s.waitConns(ctx, func(conns map[net.Conn]http.ConnState) bool { return len(conns) == 0 })
	})
}
