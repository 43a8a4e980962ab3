package storetest

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
)

// upperServer answers each byte it reads with the byte upper-cased, and tells got of each byte it
// read.
func upperServer(t *testing.T, got chan<- byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					b, err := r.ReadByte()
					if err != nil {
						return
					}
					got <- b
					if _, err := c.Write([]byte(strings.ToUpper(string(b)))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestProxy: what a client sends reaches the server while its replies are dropped, and the
// reply to what it sends after the heal comes back (the one dropped never does); a cut resets the
// connections and refuses new ones until the heal.
func TestProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), FaultTimeout)
	defer cancel()
	got := make(chan byte, 8)
	p := StartProxy(t, upperServer(t, got))
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange := func(b byte) {
		t.Helper()
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-got:
			if r != b {
				t.Fatalf("the server read %q, want %q", r, b)
			}
		case <-ctx.Done():
			t.Fatalf("the server never read %q", b)
		}
	}
	exchange('a')
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != 'A' {
		t.Fatalf("read %q, %v; want the reply to a", buf[:1], err)
	}
	p.DropReplies()
	exchange('b') // reaches the server; its reply is dropped
	WaitUntil(t, ctx, "the reply dropped", func() bool { return p.Dropped() == 1 })
	p.Heal()
	exchange('c')
	if _, err := io.ReadFull(c, buf[:1]); err != nil || buf[0] != 'C' {
		t.Fatalf("read %q, %v; want the reply to c, not b's", buf[:1], err)
	}

	p.Cut()
	if _, err := c.Read(buf); err == nil {
		t.Error("a read on a cut connection succeeded")
	}
	// The port is kept: a connection is taken, then reset (at once, or once it is accepted).
	if refused, err := net.Dial("tcp", p.Addr); err == nil {
		defer refused.Close()
		if _, err := refused.Read(buf); err == nil {
			t.Error("a connection made while the proxy is cut was not reset")
		}
	}
	p.Heal()
	again, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := again.Write([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(again, buf[:1]); err != nil || buf[0] != 'D' {
		t.Errorf("after the heal: read %q, %v", buf[:1], err)
	}
}

// TestProxyDropRepliesAfter: the replies are dropped from the request that holds the trigger on:
// the one before it is answered, it reaches the server, and its reply is lost.
func TestProxyDropRepliesAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), FaultTimeout)
	defer cancel()
	got := make(chan byte, 8)
	p := StartProxy(t, upperServer(t, got))
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p.DropRepliesAfter([]byte("t"))
	send := func(b byte) {
		t.Helper()
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("the server never read %q", b)
		}
	}
	send('x')
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'X' {
		t.Fatalf("read %q, %v; want the reply to the request before the trigger", buf, err)
	}
	if p.Dropping() {
		t.Fatal("dropping before the trigger was sent")
	}
	send('t')
	if !p.Dropping() {
		t.Fatal("the trigger reached the server, and replies are not dropped")
	}
	WaitUntil(t, ctx, "the reply to the trigger dropped", func() bool { return p.Dropped() == 1 })
}
