package twitchoauth

import (
	"net/url"
	"strconv"

	"github.com/google/uuid"
)

// The login URL of a browser login, and the state it carries: one of the caller's, or drawn
// afresh for each login.

// AuthURL returns the URL of Twitch's consent page for this login (pyTwitchAPI return_auth_url).
// When URL is "" it names http://localhost:<Port>; with Port 0 the port is known only once
// Authenticate has bound one, so take the URL from [WithAuthURLCallback] instead.
//
// Its state is the one the next [UserAuthenticator.Authenticate] that listens for the redirect
// accepts, or the one under way accepts (see State), so the URL may be handed out before
// Authenticate is called. It is safe to call from any goroutine, also while Authenticate runs.
func (a *UserAuthenticator) AuthURL() string {
	return a.authURL(a.redirectURL(a.Port), a.urlState())
}

// ownState reports whether State is the caller's own, to be used as is.
func (a *UserAuthenticator) ownState() bool {
	return a.State != "" && a.State != a.defaultState
}

// urlState returns the state AuthURL names.
func (a *UserAuthenticator) urlState() string {
	if a.ownState() {
		return a.State
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nextStateLocked()
}

// nextStateLocked returns nextState, drawing it if there is none. a.mu must be held.
func (a *UserAuthenticator) nextStateLocked() string {
	if a.nextState == "" {
		a.nextState = uuid.NewString()
	}
	return a.nextState
}

// takeState returns the state of an Authenticate that listens for the redirect, and the func to
// call when it returns. A state left to a is the one AuthURL names, replaced by a fresh one when
// that Authenticate returns; an Authenticate that starts while another uses it gets a state of
// its own.
func (a *UserAuthenticator) takeState() (state string, release func()) {
	if a.ownState() {
		return a.State, func() {}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nextTaken {
		return uuid.NewString(), func() {}
	}
	a.nextTaken = true
	return a.nextStateLocked(), func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.nextState, a.nextTaken = "", false
	}
}

func (a *UserAuthenticator) authURL(redirectURI, state string) string {
	c := a.client
	if c == nil {
		c = &Client{}
	}
	return c.endpointURL("authorize") + "?" + a.authQuery(c, redirectURI, state).Encode()
}

// authQuery returns the query of the consent page's URL (see authURL).
func (a *UserAuthenticator) authQuery(c *Client, redirectURI, state string) url.Values {
	q := url.Values{
		"client_id":     {c.ClientID},
		"redirect_uri":  {redirectURI},
		"response_type": {"code"},
		"scope":         {BuildScope(a.Scopes)},
		"force_verify":  {strconv.FormatBool(a.ForceVerify)},
	}
	if state != "" {
		q.Set("state", state)
	}
	return q
}

// redirectURL returns URL, or the URL derived from port when URL is "".
func (a *UserAuthenticator) redirectURL(port int) string {
	if a.URL != "" {
		return a.URL
	}
	return "http://localhost:" + strconv.Itoa(port)
}
