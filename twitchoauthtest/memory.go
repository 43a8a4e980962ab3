package twitchoauthtest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// memoryURL is the base URL of a Server without a listener. Nothing resolves its host: only the
// Server's own Transport reaches it.
const memoryURL = "http://id.twitch.test/oauth2/"

// memoryHelixURL is the Helix base URL of a Server without a listener.
const memoryHelixURL = "http://api.twitch.test/helix/"

// NewInMemory returns a Server that does not listen: [Server.Client] and [Server.PublicClient]
// reach it through an in-process [http.RoundTripper] ([Server.Transport]), so it works inside a
// [testing/synctest] bubble, where no socket may be used. There, time.Sleep moves the clock that
// both the fake and the code under test read: a test sleeps 5 hours and sees the code refresh the
// token that expired meanwhile, as it would after 5 hours on Twitch:
//
//	synctest.Test(t, func(t *testing.T) {
//		srv := twitchoauthtest.NewInMemory(t)
//		src := twitchoauth.NewUserTokenSource(srv.Client(), srv.IssueUserToken(twitchoauthtest.UserID), nil)
//		time.Sleep(5 * time.Hour)
//		tok, err := src.TokenContext(t.Context()) // refreshed: the 4-hour token expired on both sides
//	})
//
// Everything else is as with [NewServer], except [Server.OpenBrowser], which needs the program's
// redirect server on a socket: play a browser login with a Server from NewServer.
func NewInMemory(t testing.TB) *Server {
	t.Helper()
	s := newServer()
	s.URL, s.HelixURL = memoryURL, memoryHelixURL
	s.mem = &memTransport{fake: s.fake}
	s.browser = newBrowser(s.URL, s.mem)
	t.Cleanup(s.Close)
	return s
}

// Transport returns the RoundTripper the Server's Clients send their requests with: for a Server
// from [NewInMemory], the in-process one (use it in an [http.Client] of your own, for code that
// takes one); for one from [NewServer], nil, which means http.DefaultTransport's loopback
// connections.
func (s *Server) Transport() http.RoundTripper {
	if s.mem == nil {
		return nil
	}
	return s.mem
}

// memTransport serves requests with the fake in this process, without a socket.
type memTransport struct {
	fake *faketwitch.Server
}

// errLost is what a request whose answer the fake dropped fails with (see faketwitch.Fault.Lose).
var errLost = errors.New("twitchoauthtest: the connection was closed before the answer")

func (m *memTransport) RoundTrip(req *http.Request) (resp *http.Response, err error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if r := recover(); r != nil {
				if r != http.ErrAbortHandler {
					panic(r)
				}
				err = fmt.Errorf("%w: %w", errLost, io.ErrUnexpectedEOF)
			}
		}()
		m.fake.ServeHTTP(rec, req)
	}()
	if err != nil {
		return nil, err
	}
	if err := req.Context().Err(); err != nil { // a delayed or hanging fault gave up
		return nil, err
	}
	resp = rec.Result()
	resp.Request = req
	return resp, nil
}
