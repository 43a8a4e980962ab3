// Package faketwitch is an in-process fake of Twitch's identity server
// (https://id.twitch.tv/oauth2/) for tests and offline demos.
//
// The fake speaks Twitch's wire format rather than RFC 6749: errors are
// {"status":N,"message":"..."} bodies (sometimes with "error":"Bad Request"),
// token responses carry "scope" as a JSON array, /device reads "scopes" from
// the form body only, and /validate answers "scopes": null for a token
// without scopes. It serves authorize, token, device, validate, revoke and
// userinfo, both under /oauth2/ and at the root.
//
// Beyond the identity server, it serves one endpoint of Twitch's API:
// Helix's Get Authorization By User at /helix/authorization/users (see
// AuthorizationsEndpoint), answered from the grants it issued.
//
// Its OIDC side: a code exchange whose scope holds openid answers an
// id_token, signed RS256 with an RSA key of the server's (see RotateKey),
// carrying the nonce /authorize was given and the claims its claims
// parameter asked for; keys serves the key set and
// .well-known/openid-configuration a discovery document like Twitch's. The
// issuer is the base URL without its trailing "/". FailIDToken makes an
// id_token faulty.
//
// A Server can be used in memory through ServeHTTP, or over loopback TCP
// after Start. Every request is recorded, and faults can be injected per
// endpoint with Fail.
package faketwitch

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults seeded by New.
const (
	// ClientID is the client ID of the default confidential app.
	ClientID = "fake-client-id"
	// ClientSecret is the secret of the default confidential app.
	ClientSecret = "fake-client-secret"
	// PublicClientID is the client ID of the default public app, which has
	// no secret.
	PublicClientID = "fake-public-client-id"
	// RedirectURL is the only registered redirect URL of both default apps.
	RedirectURL = "http://localhost:17563"
	// UserID is the ID of the default user.
	UserID = "12345"
	// UserLogin is the login name of the default user.
	UserLogin = "fakeuser"
)

const (
	maxBody         = 1 << 20
	appTokenTTL     = 5011271 * time.Second
	mockTokenTTL    = 86399 * time.Second
	codeTTL         = 10 * time.Minute
	defaultTokenTTL = 4 * time.Hour
	defaultInterval = 5
	defaultDeviceTT = 1800
	lowerAlnum      = "abcdefghijklmnopqrstuvwxyz0123456789"
	upperAlpha      = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// Server is a fake Twitch identity server. Create one with New.
//
// The exported configuration fields should be set before the server sees
// traffic; they are read under the server's lock, so SetNow may also be used
// to change the clock while requests are in flight.
type Server struct {
	// AccessTokenTTL is the lifetime of user access tokens (the expires_in
	// of token responses). Zero means the default of 4 hours; a negative
	// value issues tokens that never expire (expires_in 0).
	AccessTokenTTL time.Duration
	// DeviceInterval is the polling interval, in seconds, announced by
	// /device. Zero omits the interval field from the answer.
	DeviceInterval int
	// DeviceExpiresIn is the lifetime, in seconds, of device codes. Zero
	// means the default of 1800.
	DeviceExpiresIn int
	// Now returns the current time. It is called at each use, so a clock
	// faked by testing/synctest is honoured. Nil means time.Now.
	Now func() time.Time

	mu        sync.Mutex
	clients   map[string]*client
	users     map[string]*user
	authUser  string
	deny      bool
	codes     map[string]*authCode
	access    map[string]*accessToken
	refresh   map[string]*grant
	spent     map[string]uint64  // public clients' used refresh tokens, to their grant id
	reused    int                // spent refresh tokens sent again
	devices   map[string]*device // by device code
	userCodes map[string]string  // user code to device code
	slowDown  int
	grantIDs  uint64            // the last grant id given out
	issued    map[string]uint64 // every access and refresh token ever issued, to its grant id
	faults    map[string][]*Fault
	reqs      []Request
	keys      []signingKey // the key set of /keys; the last one signs id_tokens
	nextKey   int          // the index in keyPool of the next key to add
	idFault   IDTokenFault // what is wrong with the next id_token

	srv   *httptest.Server
	base  string
	stop  chan struct{}
	conns atomic.Int64
}

type client struct {
	id, secret string
	redirects  []string
}

type user struct{ id, login, email string }

// grant is what a token or code stands for.
type grant struct {
	clientID string
	userID   string // "" for app tokens
	scopes   []string
	// id names the authorization a token descends from: issue gives a grant without one a new id,
	// and a refresh keeps it, so that RevokeGrant reaches every token of one login.
	id uint64
	// refreshIssued is when the refresh token this grant is kept under was issued.
	refreshIssued time.Time
}

// PublicRefreshTTL is how long a public client's refresh token works unused, as on Twitch.
const PublicRefreshTTL = 30 * 24 * time.Hour

type accessToken struct {
	grant
	refresh         string // refresh token issued along with it
	issued, expires time.Time
	dead            bool // revoked or expired by ExpireAccessToken
}

type authCode struct {
	grant
	redirect string
	expires  time.Time
	nonce    string   // the OIDC nonce /authorize was given
	claims   []string // the id_token claims /authorize asked for
}

type deviceState int

const (
	devicePending deviceState = iota
	deviceApproved
	deviceDenied
)

type device struct {
	grant
	userCode string
	expires  time.Time
	state    deviceState
}

// Fault replaces the normal answer of an endpoint; see Server.Fail.
type Fault struct {
	// Status is the HTTP status to answer; zero means 500.
	Status int
	// Body is the raw response body.
	Body string
	// ContentType defaults to application/json when Body starts with '{',
	// and to text/html otherwise.
	ContentType string
	// Delay waits this long before answering. If the request context is
	// done first, the handler returns without answering.
	Delay time.Duration
	// Hang never answers; the handler returns once the request context is
	// done or the server is closed.
	Hang bool
	// Truncate declares a Content-Length of len(Body)+100 but sends only
	// Body, so that a client reading the body sees an unexpected EOF.
	Truncate bool
	// Pass answers normally after Delay, instead of with Status and Body: a slow server.
	Pass bool
	// Lose does what the request asks (a refresh spends its refresh token), then drops the
	// connection without answering: an answer lost on the way back.
	Lose bool
	// Header holds headers to send with the fault's answer, such as Retry-After.
	Header map[string]string
	// Count is the number of requests the fault applies to; zero means
	// every request until ClearFaults.
	Count int
}

// Request is a recorded request.
type Request struct {
	// Endpoint is the path with an optional "/oauth2/" prefix removed, or
	// without its leading "/" otherwise: "token", "validate", ...
	Endpoint string
	// Method is the HTTP method.
	Method string
	// RawQuery is the encoded query string, without '?'.
	RawQuery string
	// Query is the parsed query string.
	Query url.Values
	// Form holds the parameters of an urlencoded body only (never the query).
	Form url.Values
	// Authorization is the Authorization header as received.
	Authorization string
	// ContentType is the Content-Type header as received.
	ContentType string
	// RemoteAddr is the network address of the client.
	RemoteAddr string
	// At is when the request arrived, by the server's clock.
	At time.Time
}

// New returns a Server seeded with a confidential app (ClientID,
// ClientSecret), a public app (PublicClientID), both registered with
// RedirectURL, and a user (UserID, UserLogin) who logs in at /authorize.
// The server is not listening; use Start or ServeHTTP.
func New() *Server {
	s := &Server{
		AccessTokenTTL:  defaultTokenTTL,
		DeviceInterval:  defaultInterval,
		DeviceExpiresIn: defaultDeviceTT,
		Now:             time.Now,
		clients:         map[string]*client{},
		users:           map[string]*user{},
		authUser:        UserID,
		codes:           map[string]*authCode{},
		access:          map[string]*accessToken{},
		refresh:         map[string]*grant{},
		spent:           map[string]uint64{},
		devices:         map[string]*device{},
		userCodes:       map[string]string{},
		issued:          map[string]uint64{},
		faults:          map[string][]*Fault{},
	}
	s.AddClient(ClientID, ClientSecret, RedirectURL)
	s.AddClient(PublicClientID, "", RedirectURL)
	s.AddUser(UserID, UserLogin, "fakeuser@example.com")
	return s
}

// Start starts serving on a loopback port and returns the base URL,
// "http://127.0.0.1:PORT/oauth2/". Calling Start again returns the same URL.
// Helix is served under "http://127.0.0.1:PORT/helix/" (see HelixURL).
func (s *Server) Start() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return s.base
	}
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.stop = make(chan struct{})
	srv.Start()
	s.srv, s.base = srv, srv.URL+"/oauth2/"
	return s.base
}

// Close stops the server started by Start, ending hanging requests. It is
// safe to call when not started, and more than once.
func (s *Server) Close() {
	s.mu.Lock()
	srv, stop := s.srv, s.stop
	s.stop = nil
	s.mu.Unlock()
	if srv == nil || stop == nil {
		return
	}
	srv.CloseClientConnections()
	close(stop)
	srv.Close()
}

// BaseURL returns the URL that Start returned, or "" before Start.
func (s *Server) BaseURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

// HelixURL returns the base URL of the Helix endpoints the server serves,
// "http://127.0.0.1:PORT/helix/", or "" before Start.
func (s *Server) HelixURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return ""
	}
	return s.srv.URL + "/helix/"
}

// Connections returns the number of TCP connections accepted so far.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// SetNow replaces the clock, like setting Now, but is safe while requests
// are being served.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Now = now
}

// AddClient registers an app, replacing any with the same ID. An empty
// secret makes a public client.
func (s *Server) AddClient(clientID, secret string, redirectURLs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[clientID] = &client{clientID, secret, slices.Clone(redirectURLs)}
}

// AddUser registers a user, replacing any with the same ID. An empty email
// leaves the email claim out of /userinfo.
func (s *Server) AddUser(userID, login, email string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[userID] = &user{userID, login, email}
}

// SetAuthorizeUser sets the user who logs in at /authorize and who approves
// devices in ApproveDevice.
func (s *Server) SetAuthorizeUser(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authUser = userID
}

// SetDeny makes /authorize redirect with error=access_denied, as when the
// user clicks "Cancel".
func (s *Server) SetDeny(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// IssueToken issues a token directly and returns it with its refresh token.
// An empty userID issues an app token, which has no refresh token. A zero
// ttl means the default lifetime (AccessTokenTTL for user tokens); a
// negative ttl issues a token that never expires.
func (s *Server) IssueToken(clientID, userID string, scopes []string, ttl time.Duration) (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ttl == 0 {
		ttl = appTokenTTL
		if userID != "" {
			ttl = s.userTTL()
		}
	}
	return s.issue(grant{clientID: clientID, userID: userID, scopes: scopes}, ttl, userID != "")
}

// ExpireAccessToken makes an access token invalid, as if its lifetime had
// passed. Its refresh token keeps working.
func (s *Server) ExpireAccessToken(access string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.access[access]; t != nil {
		t.dead = true
	}
}

// RevokeRefreshToken makes a refresh token invalid, as when the user
// disconnects the app or changes their password.
func (s *Server) RevokeRefreshToken(refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refresh, refresh)
}

// ApproveDevice approves the device authorization with the given user code
// on behalf of the authorize user (see SetAuthorizeUser).
func (s *Server) ApproveDevice(userCode string) error {
	return s.settleDevice(userCode, deviceApproved)
}

// DenyDevice denies the device authorization with the given user code.
func (s *Server) DenyDevice(userCode string) error {
	return s.settleDevice(userCode, deviceDenied)
}

func (s *Server) settleDevice(userCode string, st deviceState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[s.userCodes[userCode]]
	if d == nil {
		return fmt.Errorf("faketwitch: unknown user code %q", userCode)
	}
	if !s.now().Before(d.expires) {
		return fmt.Errorf("faketwitch: user code %q has expired", userCode)
	}
	d.state, d.userID = st, s.authUser
	return nil
}

// SlowDown makes the next n device code polls that would answer
// authorization_pending answer slow_down instead.
func (s *Server) SlowDown(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowDown = n
}

// Fail queues a fault for an endpoint ("token", "validate", "revoke",
// "device", "userinfo", "authorize", or any other path). Matching requests
// are recorded, then answered by the fault instead of normal handling.
// Faults queued for the same endpoint apply in order, each to f.Count
// requests; a fault with Count zero applies until ClearFaults.
func (s *Server) Fail(endpoint string, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[endpoint] = append(s.faults[endpoint], &f)
}

// ClearFaults removes all queued faults.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.faults)
}

// Requests returns the recorded requests in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// CountRequests returns the number of recorded requests to an endpoint.
func (s *Server) CountRequests(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reqs {
		if r.Endpoint == endpoint {
			n++
		}
	}
	return n
}

// CountGrant returns the number of recorded token requests with the given
// grant_type, taken from the body or else the query.
func (s *Server) CountGrant(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.reqs {
		if r.Endpoint == "token" && cmp.Or(r.Form.Get("grant_type"), r.Query.Get("grant_type")) == grantType {
			n++
		}
	}
	return n
}

// ReusedRefreshTokens returns how many times a public client's spent refresh token was sent
// again. Each such request ended the whole grant it came from, as Twitch may do
// (twitchdev/issues#903).
func (s *Server) ReusedRefreshTokens() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reused
}

// IssuedTokens returns every access and refresh token the server has issued, in no particular
// order: a test looks for each of them where no token may be (a store's files at rest, a log).
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.issued))
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = nil
}

// ServeHTTP implements http.Handler, so that the fake can also be used in
// memory without a listener.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	endpoint := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/oauth2/"), "/")
	if r.Body == nil {
		r.Body = http.NoBody
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	perr := r.ParseForm()
	s.mu.Lock()
	s.reqs = append(s.reqs, Request{
		Endpoint:      endpoint,
		Method:        r.Method,
		RawQuery:      r.URL.RawQuery,
		Query:         r.URL.Query(),
		Form:          r.PostForm,
		Authorization: r.Header.Get("Authorization"),
		ContentType:   r.Header.Get("Content-Type"),
		RemoteAddr:    r.RemoteAddr,
		At:            s.now(),
	})
	f, stop, faulted := s.takeFault(endpoint)
	s.mu.Unlock()
	if faulted {
		if !f.Pass && !f.Lose {
			serveFault(w, r, f, stop)
			return
		}
		if !waitFault(r, f, stop) {
			return
		}
	}
	if perr != nil {
		writeReply(w, errorReply(http.StatusBadRequest, "invalid request body", true))
		return
	}
	rep := s.route(endpoint, r)
	if faulted && f.Lose {
		panic(http.ErrAbortHandler) // the server closes the connection without a word
	}
	writeReply(w, rep)
}

// takeFault pops the next fault of endpoint. s.mu must be held.
func (s *Server) takeFault(endpoint string) (Fault, <-chan struct{}, bool) {
	q := s.faults[endpoint]
	if len(q) == 0 {
		return Fault{}, nil, false
	}
	f := *q[0]
	if q[0].Count > 0 {
		if q[0].Count--; q[0].Count == 0 {
			s.faults[endpoint] = q[1:]
		}
	}
	return f, s.stop, true
}

// waitFault waits out f's Delay or Hang; it reports false when the request or the server ended
// first.
func waitFault(r *http.Request, f Fault, stop <-chan struct{}) bool {
	if !f.Hang && f.Delay <= 0 {
		return true
	}
	var timer <-chan time.Time
	if !f.Hang {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-timer:
		return true
	case <-r.Context().Done():
	case <-stop:
	}
	return false
}

func serveFault(w http.ResponseWriter, r *http.Request, f Fault, stop <-chan struct{}) {
	if !waitFault(r, f, stop) {
		return
	}
	ct := f.ContentType
	if ct == "" {
		ct = "text/html"
		if strings.HasPrefix(f.Body, "{") {
			ct = "application/json"
		}
	}
	w.Header().Set("Content-Type", ct)
	for k, v := range f.Header {
		w.Header().Set(k, v)
	}
	if f.Truncate {
		w.Header().Set("Content-Length", strconv.Itoa(len(f.Body)+100))
	}
	w.WriteHeader(cmp.Or(f.Status, http.StatusInternalServerError))
	io.WriteString(w, f.Body)
}

// now returns the current time. s.mu must be held.
func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// userTTL returns the lifetime of user access tokens. s.mu must be held.
func (s *Server) userTTL() time.Duration { return cmp.Or(s.AccessTokenTTL, defaultTokenTTL) }

// issue creates an access token, and a refresh token if withRefresh is set.
// A negative ttl never expires. s.mu must be held.
func (s *Server) issue(g grant, ttl time.Duration, withRefresh bool) (access, refresh string) {
	g.scopes = slices.Clone(g.scopes)
	if len(g.scopes) == 0 {
		g.scopes = nil
	}
	if g.id == 0 {
		s.grantIDs++
		g.id = s.grantIDs
	}
	now := s.now()
	t := &accessToken{grant: g, issued: now}
	if ttl > 0 {
		t.expires = now.Add(ttl)
	}
	access = randString(lowerAlnum, 30)
	s.issued[access] = g.id
	if withRefresh {
		refresh = randString(lowerAlnum, 50)
		t.refresh = refresh
		g := g
		g.refreshIssued = now
		s.refresh[refresh] = &g
		s.issued[refresh] = g.id
	}
	s.access[access] = t
	return access, refresh
}

// liveToken returns the access token if it is valid now. s.mu must be held.
func (s *Server) liveToken(access string) *accessToken {
	t := s.access[access]
	if t == nil || t.dead || (!t.expires.IsZero() && !s.now().Before(t.expires)) {
		return nil
	}
	return t
}

// expiresIn returns the whole seconds t has left, 0 if it never expires.
// s.mu must be held.
func (s *Server) expiresIn(t *accessToken) int64 {
	if t.expires.IsZero() {
		return 0
	}
	return int64(t.expires.Sub(s.now()) / time.Second)
}

// randString returns n random characters from alphabet.
func randString(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		rand.Read(buf)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
