package storetest

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards loopback TCP connections to a store's server, and fails the network between a
// replica and the server for real: it loses the server's replies while the requests still reach
// it (DropReplies), cuts every connection (Cut), and lets everything through again (Heal). It
// keeps its port while cut, so that nothing else takes it meanwhile, and resets every connection
// made to it then.
type Proxy struct {
	Addr   string // where clients connect
	target string
	ln     net.Listener

	dropping atomic.Bool
	dropped  atomic.Int64           // bytes of replies lost
	trigger  atomic.Pointer[[]byte] // what a client sends that starts dropping replies

	mu    sync.Mutex
	cut   bool
	gen   int // how many cuts so far
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// StartProxy starts a proxy to target on a loopback port; it is closed when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	p.wg.Go(func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return // closed at the test's end
			}
			p.wg.Go(func() { p.forward(down) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

// forward copies between down, a client's connection, and a new connection to the target, both
// ways (the server's bytes are thrown away while replies are dropped), until either side closes
// or Cut closes both. While the proxy is cut, it resets down.
func (p *Proxy) forward(down net.Conn) {
	p.mu.Lock()
	cut, gen := p.cut, p.gen
	p.mu.Unlock()
	if cut {
		reset(down)
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		reset(down)
		return
	}
	p.mu.Lock()
	if p.gen != gen { // cut since down was accepted
		p.mu.Unlock()
		reset(down)
		up.Close()
		return
	}
	p.conns[down], p.conns[up] = true, true
	p.mu.Unlock()
	var both sync.WaitGroup
	both.Go(func() { p.request(up, down); up.Close(); down.Close() })
	both.Go(func() { p.reply(down, up); up.Close(); down.Close() })
	both.Wait()
	p.mu.Lock()
	delete(p.conns, down)
	delete(p.conns, up)
	p.mu.Unlock()
}

// request copies a client's bytes from down to up. Bytes that hold the trigger start the dropping
// of replies before they reach the server, so that the reply to them is lost for certain.
func (p *Proxy) request(up, down net.Conn) {
	buf := make([]byte, 32<<10)
	var tail []byte // the last bytes of the previous read: the trigger may straddle two
	for {
		n, err := down.Read(buf)
		if n > 0 {
			if trig := p.trigger.Load(); trig != nil {
				seen := append(tail, buf[:n]...)
				if bytes.Contains(seen, *trig) && p.trigger.CompareAndSwap(trig, nil) {
					p.dropping.Store(true)
				}
				tail = append(tail[:0], seen[max(0, len(seen)-len(*trig)+1):]...)
			}
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reply copies the server's bytes from up to down, throwing them away while replies are dropped.
func (p *Proxy) reply(down, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if p.dropping.Load() {
				p.dropped.Add(int64(n))
			} else if _, werr := down.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// reset closes c with a TCP reset, as a host that refuses it would.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// DropReplies loses every byte the server sends from now on, on every connection, until Heal;
// what clients send still reaches the server, which acts on it. A client's read waits for a
// reply that never comes: its connection is out of step from then on, and is best Cut before
// Heal.
func (p *Proxy) DropReplies() { p.dropping.Store(true) }

// DropRepliesAfter makes the proxy start dropping replies (as DropReplies does) when a client
// sends trigger, before the bytes that hold it reach the server: the reply to the request that
// carries trigger is lost, whichever connection carries it, and whatever requests went before it
// on the way to it (a read, say) were answered.
func (p *Proxy) DropRepliesAfter(trigger []byte) {
	trig := bytes.Clone(trigger)
	p.trigger.Store(&trig)
}

// Dropping reports whether the server's replies are being dropped.
func (p *Proxy) Dropping() bool { return p.dropping.Load() }

// Dropped returns how many bytes of the server's replies were dropped so far.
func (p *Proxy) Dropped() int64 { return p.dropped.Load() }

// Cut resets every connection, losing what is in flight, and every new one until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.gen++
	for c := range p.conns {
		reset(c)
	}
	clear(p.conns)
}

// Heal lets new connections through again, and the server's replies.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	p.dropping.Store(false)
	p.trigger.Store(nil)
}
