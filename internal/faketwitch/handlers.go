package faketwitch

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// reply is an endpoint's answer: a JSON body (none if nil) and, for
// redirects, a Location.
type reply struct {
	status   int
	body     any
	location string
}

// errorReply returns a Twitch error body, {"status":N,"message":"..."},
// with "error" set to the status text when withText is set.
func errorReply(status int, msg string, withText bool) reply {
	body := map[string]any{"status": status, "message": msg}
	if withText {
		body["error"] = http.StatusText(status)
	}
	return reply{status: status, body: body}
}

func badRequest(msg string) reply { return errorReply(http.StatusBadRequest, msg, true) }

func writeReply(w http.ResponseWriter, rep reply) {
	if rep.location != "" {
		w.Header().Set("Location", rep.location)
	}
	if rep.body == nil {
		w.WriteHeader(rep.status)
		return
	}
	b, err := json.Marshal(rep.body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(rep.status)
	w.Write(b)
}

// route dispatches a request to its endpoint's handler.
func (s *Server) route(endpoint string, r *http.Request) reply {
	var methods []string
	var h func(*http.Request) reply
	switch endpoint {
	case "authorize":
		methods, h = []string{http.MethodGet, http.MethodPost}, s.authorize
	case "token":
		methods, h = []string{http.MethodPost}, s.token
	case "device":
		methods, h = []string{http.MethodPost}, s.device
	case "validate":
		methods, h = []string{http.MethodGet}, s.validate
	case "revoke":
		methods, h = []string{http.MethodPost}, s.revoke
	case "userinfo":
		methods, h = []string{http.MethodGet, http.MethodPost}, s.userinfo
	case "keys":
		methods, h = []string{http.MethodGet}, s.keysReply
	case ".well-known/openid-configuration":
		methods, h = []string{http.MethodGet}, s.discovery
	case AuthorizationsEndpoint:
		methods, h = []string{http.MethodGet}, s.authorizations
	default:
		return errorReply(http.StatusNotFound, "Not Found", false)
	}
	if !slices.Contains(methods, r.Method) {
		return errorReply(http.StatusMethodNotAllowed, "method not allowed", false)
	}
	return h(r)
}

// redirect returns a 302 to base with params appended to its query.
func redirect(base string, params url.Values) reply {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return reply{status: http.StatusFound, location: base + sep + params.Encode()}
}

// authorize serves the browser authorization page, approving or denying at
// once, and twitch-cli's POST ?grant_type=user_token shortcut.
//
// A client ID Twitch does not know gets no redirect, since there is no
// registered URL to send it to: Twitch's page answers 400 with the bare
// {"status":400,"message":"invalid client"} (no "error" field), which the
// browser shows, and the program waiting at its redirect URL hears nothing.
// That answer is all a program can learn it from, by asking the page itself.
//
// The fake has no login session: every GET is the SetAuthorizeUser user
// approving (or, after SetDeny, declining) at once, so a request of the
// program's own for a known client gets a code, where Twitch, seeing no
// session cookie, would send it to its login page instead.
func (s *Server) authorize(r *http.Request) reply {
	if r.Method == http.MethodPost {
		return s.mockAuthorize(r)
	}
	q := r.URL.Query()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[q.Get("client_id")]
	if c == nil {
		return errorReply(http.StatusBadRequest, "invalid client", false)
	}
	if q.Get("response_type") != "code" {
		return badRequest("unsupported response_type")
	}
	params := url.Values{}
	if q.Has("state") {
		params.Set("state", q.Get("state"))
	}
	redirectURI := q.Get("redirect_uri")
	if !slices.Contains(c.redirects, redirectURI) {
		const msg = "Parameter redirect_uri does not match registered URI"
		if len(c.redirects) == 0 {
			return badRequest(msg)
		}
		params.Set("error", "redirect_mismatch")
		params.Set("error_description", msg)
		return redirect(c.redirects[0], params)
	}
	if s.deny {
		params.Set("error", "access_denied")
		params.Set("error_description", "The user denied you access")
		return redirect(redirectURI, params)
	}
	scopes := strings.Fields(q.Get("scope"))
	code := randString(lowerAlnum, 30)
	s.codes[code] = &authCode{
		grant:    grant{clientID: c.id, userID: s.authUser, scopes: scopes},
		redirect: redirectURI,
		expires:  s.now().Add(codeTTL),
		nonce:    q.Get("nonce"),
		claims:   idTokenClaims(q.Get("claims")),
	}
	params.Set("code", code)
	params.Set("scope", strings.Join(scopes, " "))
	return redirect(redirectURI, params)
}

// mockAuthorize mimics twitch-cli's mock: all parameters come from the query.
func (s *Server) mockAuthorize(r *http.Request) reply {
	q := r.URL.Query()
	if q.Get("grant_type") != "user_token" {
		return badRequest("Invalid grant type")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, rep := s.checkClient(q.Get("client_id"), q.Get("client_secret"), secretExact)
	if c == nil {
		return rep
	}
	u := s.users[q.Get("user_id")]
	if u == nil {
		return badRequest("invalid user")
	}
	scopes := strings.Split(q.Get("scope"), " ") // [""] for none, as twitch-cli does
	granted := slices.DeleteFunc(slices.Clone(scopes), func(sc string) bool { return sc == "" })
	access, _ := s.issue(grant{clientID: c.id, userID: u.id, scopes: granted}, mockTokenTTL, false)
	return reply{status: http.StatusOK, body: map[string]any{
		"access_token":  access,
		"refresh_token": "",
		"expires_in":    int64(mockTokenTTL / time.Second),
		"scope":         scopes,
		"token_type":    "bearer",
	}}
}

// secretMode says how checkClient treats client_secret.
type secretMode int

const (
	secretExact        secretMode = iota // secret must equal the client's ("" for public)
	secretConfidential                   // public clients rejected; secret must match
	secretRequired                       // confidential: missing is 400, wrong is 403
	secretIfSent                         // confidential: checked only when sent
)

// checkClient authenticates a client. It returns a nil client and the
// error reply on failure. s.mu must be held.
func (s *Server) checkClient(id, secret string, mode secretMode) (*client, reply) {
	if id == "" {
		return nil, badRequest("missing client id")
	}
	c := s.clients[id]
	switch {
	case c == nil, mode == secretConfidential && c.secret == "":
		return nil, badRequest("invalid client")
	case mode == secretRequired && c.secret != "" && secret == "":
		return nil, badRequest("missing client secret")
	case mode == secretIfSent && secret == "",
		mode != secretExact && c.secret == "":
		return c, reply{}
	case secret != c.secret:
		return nil, errorReply(http.StatusForbidden, "invalid client secret", false)
	}
	return c, reply{}
}

// token serves POST /token, reading parameters from the body and the query.
func (s *Server) token(r *http.Request) reply {
	p := r.Form
	s.mu.Lock()
	defer s.mu.Unlock()
	switch gt := p.Get("grant_type"); gt {
	case "":
		return badRequest("missing grant type")
	case "authorization_code":
		return s.exchangeCode(p, s.issuer(r))
	case "refresh_token":
		return s.refreshToken(p)
	case "client_credentials":
		c, rep := s.checkClient(p.Get("client_id"), p.Get("client_secret"), secretConfidential)
		if c == nil {
			return rep
		}
		access, _ := s.issue(grant{clientID: c.id}, appTokenTTL, false)
		return reply{status: http.StatusOK, body: map[string]any{
			"access_token": access,
			"expires_in":   int64(appTokenTTL / time.Second),
			"token_type":   "bearer",
		}}
	case deviceGrantType:
		return s.deviceToken(p)
	default:
		return badRequest("Invalid grant type")
	}
}

// userToken issues a user access token with a refresh token and returns the
// token response. s.mu must be held.
func (s *Server) userToken(g grant) reply {
	ttl := s.userTTL()
	access, refresh := s.issue(g, ttl, true)
	body := map[string]any{
		"access_token":  access,
		"expires_in":    max(int64(ttl/time.Second), 0),
		"refresh_token": refresh,
		"token_type":    "bearer",
	}
	if len(g.scopes) > 0 {
		body["scope"] = g.scopes
	}
	return reply{status: http.StatusOK, body: body}
}

func (s *Server) exchangeCode(p url.Values, iss string) reply {
	c, rep := s.checkClient(p.Get("client_id"), p.Get("client_secret"), secretConfidential)
	if c == nil {
		return rep
	}
	code := s.codes[p.Get("code")]
	if code == nil || code.clientID != c.id {
		return badRequest("Invalid authorization code")
	}
	delete(s.codes, p.Get("code"))
	if !s.now().Before(code.expires) {
		return badRequest("Invalid authorization code")
	}
	if p.Get("redirect_uri") != code.redirect {
		return badRequest("Parameter redirect_uri does not match registered URI")
	}
	rep = s.userToken(code.grant)
	if slices.Contains(code.scopes, "openid") {
		if tok, ok := s.signIDToken(code, iss); ok {
			rep.body.(map[string]any)["id_token"] = tok
		}
	}
	return rep
}

func (s *Server) refreshToken(p url.Values) reply {
	c, rep := s.checkClient(p.Get("client_id"), p.Get("client_secret"), secretRequired)
	if c == nil {
		return rep
	}
	rt := p.Get("refresh_token")
	g := s.refresh[rt]
	if id, ok := s.spent[rt]; ok && g == nil {
		// A public client's refresh token sent again: Twitch may end the whole grant.
		s.reused++
		s.revokeGrantLocked(id)
		return badRequest("Invalid refresh token")
	}
	if g == nil || g.clientID != c.id {
		return badRequest("Invalid refresh token")
	}
	if c.secret == "" {
		delete(s.refresh, rt) // public clients' refresh tokens are single use
		if !s.now().Before(g.refreshIssued.Add(PublicRefreshTTL)) {
			return badRequest("Invalid refresh token") // unused for 30 days: lapsed
		}
		s.spent[rt] = g.id
	}
	return s.userToken(*g)
}

func (s *Server) deviceToken(p url.Values) reply {
	c, rep := s.checkClient(p.Get("client_id"), p.Get("client_secret"), secretIfSent)
	if c == nil {
		return rep
	}
	dc := p.Get("device_code")
	d := s.devices[dc]
	if d == nil || d.clientID != c.id {
		return errorReply(http.StatusBadRequest, "invalid device code", false)
	}
	if !s.now().Before(d.expires) {
		s.dropDevice(dc)
		return errorReply(http.StatusBadRequest, "invalid device code", false)
	}
	switch d.state {
	case devicePending:
		if s.slowDown > 0 {
			s.slowDown--
			return errorReply(http.StatusBadRequest, "slow_down", false)
		}
		return errorReply(http.StatusBadRequest, "authorization_pending", false)
	case deviceDenied:
		s.dropDevice(dc)
		return badRequest("access_denied")
	}
	s.dropDevice(dc)
	return s.userToken(d.grant)
}

// dropDevice forgets a device code. s.mu must be held.
func (s *Server) dropDevice(deviceCode string) {
	if d := s.devices[deviceCode]; d != nil {
		delete(s.userCodes, d.userCode)
		delete(s.devices, deviceCode)
	}
}

// device serves POST /device, which reads the form body only.
func (s *Server) device(r *http.Request) reply {
	p := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	id := p.Get("client_id")
	if id == "" {
		return badRequest("missing client id")
	}
	if s.clients[id] == nil {
		return badRequest("invalid client")
	}
	userCode := randString(upperAlpha, 8)
	for s.userCodes[userCode] != "" {
		userCode = randString(upperAlpha, 8)
	}
	deviceCode := randString(lowerAlnum, 40)
	expiresIn := s.DeviceExpiresIn
	if expiresIn <= 0 {
		expiresIn = defaultDeviceTT
	}
	s.devices[deviceCode] = &device{
		grant:    grant{clientID: id, scopes: strings.Fields(p.Get("scopes"))},
		userCode: userCode,
		expires:  s.now().Add(time.Duration(expiresIn) * time.Second),
	}
	s.userCodes[userCode] = deviceCode
	body := map[string]any{
		"device_code":      deviceCode,
		"expires_in":       expiresIn,
		"user_code":        userCode,
		"verification_uri": "https://www.twitch.tv/activate?public=true&device-code=" + userCode,
	}
	if s.DeviceInterval > 0 {
		body["interval"] = s.DeviceInterval
	}
	return reply{status: http.StatusOK, body: body}
}

// authToken returns the token of the Authorization header if its scheme is
// one of schemes, and whether the header was present at all.
func authToken(r *http.Request, schemes ...string) (token string, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, token, _ := strings.Cut(h, " ")
	for _, sc := range schemes {
		if strings.EqualFold(scheme, sc) {
			return strings.TrimSpace(token), true
		}
	}
	return "", true
}

func (s *Server) validate(r *http.Request) reply {
	tok, ok := authToken(r, "OAuth", "Bearer")
	if !ok {
		return errorReply(http.StatusUnauthorized, "missing authorization token", false)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.liveToken(tok)
	if t == nil {
		return errorReply(http.StatusUnauthorized, "invalid access token", false)
	}
	body := map[string]any{
		"client_id":  t.clientID,
		"scopes":     t.scopes,
		"expires_in": s.expiresIn(t),
	}
	if t.userID != "" {
		body["user_id"] = t.userID
		body["login"] = ""
		if u := s.users[t.userID]; u != nil {
			body["login"] = u.login
		}
	}
	return reply{status: http.StatusOK, body: body}
}

func (s *Server) revoke(r *http.Request) reply {
	p := r.Form
	s.mu.Lock()
	defer s.mu.Unlock()
	id := p.Get("client_id")
	if id == "" {
		return errorReply(http.StatusBadRequest, "missing client id", false)
	}
	if s.clients[id] == nil {
		return errorReply(http.StatusNotFound, "client does not exist", false)
	}
	t := s.liveToken(p.Get("token"))
	if t == nil || t.clientID != id {
		return errorReply(http.StatusBadRequest, "Invalid token", false)
	}
	t.dead = true
	delete(s.refresh, t.refresh)
	return reply{status: http.StatusOK}
}

func (s *Server) userinfo(r *http.Request) reply {
	tok, _ := authToken(r, "Bearer")
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.liveToken(tok)
	if t == nil || t.userID == "" {
		return errorReply(http.StatusUnauthorized, "invalid access token", true)
	}
	body := map[string]any{
		"aud":                t.clientID,
		"exp":                t.expires.Unix(),
		"iat":                t.issued.Unix(),
		"iss":                "https://id.twitch.tv/oauth2",
		"sub":                t.userID,
		"email_verified":     true,
		"picture":            "https://static-cdn.jtvnw.net/user-default-pictures-uv/profile.png",
		"updated_at":         "2024-01-01T00:00:00Z",
		"preferred_username": "",
	}
	if t.expires.IsZero() {
		body["exp"] = t.issued.Add(defaultTokenTTL).Unix()
	}
	if u := s.users[t.userID]; u != nil {
		body["preferred_username"] = u.login
		if u.email != "" {
			body["email"] = u.email
		}
	}
	return reply{status: http.StatusOK, body: body}
}
