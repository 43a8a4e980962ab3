package twitchoauthtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// AuthorizationsEndpoint names Helix's Get Authorization By User (GET
// HelixURL+"authorization/users") for [Server.Fail], [Server.RateLimit], [Server.Requests] and the
// other methods that take an endpoint.
const AuthorizationsEndpoint = faketwitch.AuthorizationsEndpoint

// endpoints are the endpoints the Server serves, as Fail and Requests name them.
var endpoints = []string{"authorize", "token", "device", "validate", "revoke", "userinfo", "keys", AuthorizationsEndpoint}

// checkEndpoint panics unless endpoint is one of endpoints.
func checkEndpoint(method, endpoint string) {
	if !slices.Contains(endpoints, endpoint) {
		panic(fmt.Sprintf("twitchoauthtest: %s: unknown endpoint %q (want one of %q)", method, endpoint, endpoints))
	}
}

// Fail makes the next n requests to endpoint ("authorize", "token", "device", "validate",
// "revoke", "userinfo", "keys", the OIDC key set, or [AuthorizationsEndpoint]) fail with this HTTP
// status, 400 to 599, and a Twitch error body,
// {"error":"Bad Gateway","message":"Bad Gateway","status":502} for 502: an outage (5xx), a rate
// limit (429), an answer the code under test does not expect. n <= 0 fails every request until [Server.ClearFaults]. Faults queued for
// one endpoint apply in turn. The requests are recorded.
//
// To make a refresh fail as Twitch does when the grant is gone, with 400 "Invalid refresh token",
// use [Server.Revoke].
func (s *Server) Fail(endpoint string, status, n int) {
	checkEndpoint("Fail", endpoint)
	if status < 400 || status > 599 {
		panic(fmt.Sprintf("twitchoauthtest: Fail: status %d is not an error status (400 to 599)", status))
	}
	text := http.StatusText(status)
	body, _ := json.Marshal(map[string]any{"error": text, "status": status, "message": text})
	s.fake.Fail(endpoint, faketwitch.Fault{Status: status, Body: string(body), Count: max(n, 0)})
}

// Delay makes the next n requests to endpoint wait d before their normal answer: a slow Twitch.
// A request whose context ends first gets no answer. n <= 0 delays every request until
// [Server.ClearFaults]; d <= 0 panics.
func (s *Server) Delay(endpoint string, d time.Duration, n int) {
	checkEndpoint("Delay", endpoint)
	if d <= 0 {
		panic(fmt.Sprintf("twitchoauthtest: Delay: %v is no delay", d))
	}
	s.fake.Fail(endpoint, faketwitch.Fault{Pass: true, Delay: d, Count: max(n, 0)})
}

// Hang makes the next n requests to endpoint never get an answer: each waits until its context
// ends or the Server is closed. Use it to check that the code under test gives up. n <= 0 hangs
// every request until [Server.ClearFaults].
func (s *Server) Hang(endpoint string, n int) {
	checkEndpoint("Hang", endpoint)
	s.fake.Fail(endpoint, faketwitch.Fault{Hang: true, Count: max(n, 0)})
}

// RateLimit makes the next n requests to endpoint answer 429 Too Many Requests with a
// Retry-After header of wait (whole seconds), as Twitch does when a client sends too much. n <= 0
// answers every request so until [Server.ClearFaults].
func (s *Server) RateLimit(endpoint string, wait time.Duration, n int) {
	checkEndpoint("RateLimit", endpoint)
	body, _ := json.Marshal(map[string]any{"error": "Too Many Requests", "status": 429, "message": "Too Many Requests"})
	s.fake.Fail(endpoint, faketwitch.Fault{Status: http.StatusTooManyRequests, Body: string(body), Count: max(n, 0),
		Header: map[string]string{"Retry-After": fmt.Sprint(int64(wait.Seconds()))}})
}

// Lose makes the next n requests to endpoint do what they ask, then lose the answer: the
// connection is closed before it is sent, as when the network drops on the way back. A refresh
// so lost has spent its refresh token. n <= 0 loses every answer until [Server.ClearFaults].
func (s *Server) Lose(endpoint string, n int) {
	checkEndpoint("Lose", endpoint)
	s.fake.Fail(endpoint, faketwitch.Fault{Lose: true, Count: max(n, 0)})
}

// ReusedRefreshTokens returns how many times a public client's refresh token was sent again after
// it was spent. Twitch refuses it, and may end the user's whole authorization for it; so does the
// Server. A program that never loses a refresh token, nor sends one twice, keeps it at 0.
func (s *Server) ReusedRefreshTokens() int { return s.fake.ReusedRefreshTokens() }

// ClearFaults removes every fault queued by [Server.Fail], [Server.Delay], [Server.Hang],
// [Server.RateLimit] and [Server.Lose].
func (s *Server) ClearFaults() { s.fake.ClearFaults() }

// Request is a request the Server received, as the code under test sent it, secrets included.
type Request struct {
	// Endpoint is the endpoint: "token", "validate", ...
	Endpoint string
	// Method is the HTTP method.
	Method string
	// Query holds the URL's query parameters. Twitch accepts secrets there on some endpoints; the
	// twitchoauth package never puts one there.
	Query url.Values
	// Form holds the parameters of an application/x-www-form-urlencoded body (never the query's):
	// "grant_type", "client_id", "client_secret", "refresh_token", ...
	Form url.Values
	// Authorization is the Authorization header as received.
	Authorization string
}

// Requests returns copies of the requests the Server received at endpoint, in arrival order; ""
// returns every request, also those to paths the Server does not serve. An endpoint that is not
// one of [Server.Fail]'s panics.
func (s *Server) Requests(endpoint string) []Request {
	if endpoint != "" {
		checkEndpoint("Requests", endpoint)
	}
	var out []Request
	for _, r := range s.fake.Requests() {
		if endpoint != "" && r.Endpoint != endpoint {
			continue
		}
		out = append(out, Request{
			Endpoint:      r.Endpoint,
			Method:        r.Method,
			Query:         cloneValues(r.Query),
			Form:          cloneValues(r.Form),
			Authorization: r.Authorization,
		})
	}
	return out
}

// cloneValues returns a deep copy of v; never nil, so that Get and Has work on it.
func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
