package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
)

// fakeChat is a small Twitch chat (IRC) server on loopback, plain TCP, for the offline demo and the
// test. It speaks what go-twitch-irc needs: CAP REQ, PASS, NICK, JOIN and PING. Like Twitch, it
// welcomes a client whose PASS is "oauth:" and a live access token (live says which are), and
// answers any other with "Login authentication failed" and hangs up.
type fakeChat struct {
	ln   net.Listener
	live func(accessToken string) bool
	seen func(chatEvent) // told of each login and join, from the connection's goroutine

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// chatEvent is what a client did.
type chatEvent struct {
	nick    string
	pass    string // a login's PASS, "oauth:<token>": a secret, never print it
	ok      bool   // the login was accepted
	channel string // set for a JOIN, "#name"
}

// startFakeChat listens on a loopback port and serves until Close.
func startFakeChat(live func(accessToken string) bool, seen func(chatEvent)) (*fakeChat, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &fakeChat{ln: ln, live: live, seen: seen, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed
			}
			s.mu.Lock()
			s.conns[conn] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(conn)
			}()
		}
	}()
	return s, nil
}

// Addr is the server's "127.0.0.1:port".
func (s *fakeChat) Addr() string { return s.ln.Addr().String() }

// DropAll ends every connection as Twitch does when it restarts a chat server: it sends RECONNECT
// and hangs up. (The line is also what orders, for the race detector, a SetIRCToken made before
// DropAll and the reconnect's read of it: go-twitch-irc has no lock between the two.)
func (s *fakeChat) DropAll() { s.closeAll(":tmi.twitch.tv RECONNECT\r\n") }

// Close stops the server and waits for its goroutines.
func (s *fakeChat) Close() {
	s.ln.Close()
	s.closeAll("")
	s.wg.Wait()
}

func (s *fakeChat) closeAll(last string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for conn := range s.conns {
		conn.Write([]byte(last))
		conn.Close()
	}
}

func (s *fakeChat) serve(conn net.Conn) {
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	send := func(line string) { fmt.Fprintf(conn, "%s\r\n", line) }
	var nick, pass string
	loggedIn := false
	lines := bufio.NewScanner(conn)
	for lines.Scan() {
		cmd, arg, _ := strings.Cut(lines.Text(), " ")
		switch cmd {
		case "CAP": // CAP REQ :twitch.tv/tags twitch.tv/commands
			send(":tmi.twitch.tv CAP * ACK " + strings.TrimPrefix(arg, "REQ "))
		case "PASS":
			pass = arg
		case "NICK":
			nick = arg
			token, isOAuth := strings.CutPrefix(pass, "oauth:")
			loggedIn = isOAuth && s.live(token)
			s.tell(chatEvent{nick: nick, pass: pass, ok: loggedIn})
			if !loggedIn {
				send(":tmi.twitch.tv NOTICE * :Login authentication failed")
				return
			}
			send(":tmi.twitch.tv 001 " + nick + " :Welcome, GLHF!")
		case "JOIN": // JOIN #a,#b
			if !loggedIn {
				return
			}
			for _, ch := range strings.Split(arg, ",") {
				s.tell(chatEvent{nick: nick, channel: ch})
				send(fmt.Sprintf(":%s!%s@%s.tmi.twitch.tv JOIN %s", nick, nick, nick, ch))
			}
		case "PING": // PING :go-twitch-irc
			send(":tmi.twitch.tv PONG tmi.twitch.tv " + arg)
		}
	}
}

func (s *fakeChat) tell(e chatEvent) {
	if s.seen != nil {
		s.seen(e)
	}
}
