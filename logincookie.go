package twitchoauth

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// The web login's cookie: the state, nonce and return path of a login under way, sealed with an
// HMAC, and what may ride in it.

// loginCookie is what the login cookie holds, under its MAC.
type loginCookie struct {
	State    string `json:"s"`
	Nonce    string `json:"n,omitempty"`
	ReturnTo string `json:"r,omitempty"`
	Issued   int64  `json:"t"` // Unix seconds
}

// cookieName returns the login cookie's name: with the __Secure- prefix over https, so that a
// browser accepts it only with Secure.
func cookieName(redirect *url.URL) string {
	if redirect.Scheme == "https" {
		return "__Secure-" + cookieBaseName
	}
	return cookieBaseName
}

// loginCookieFor returns the login cookie for redirect, with value and maxAge.
func loginCookieFor(redirect *url.URL, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     cookieName(redirect),
		Value:    value,
		Path:     cmp.Or(redirect.Path, "/"),
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   redirect.Scheme == "https",
		SameSite: http.SameSiteLaxMode,
	}
}

// mac returns the cookie's MAC of payload, bound to the app and the redirect URL.
func (wl *WebLogin) mac(payload string) []byte {
	m := hmac.New(sha256.New, wl.key)
	m.Write([]byte(cookieMACLabel + "\x00" + wl.client.ClientID + "\x00" + wl.RedirectURL + "\x00" + payload))
	return m.Sum(nil)
}

// seal returns the cookie value of lc: its JSON and its MAC, each base64url.
func (wl *WebLogin) seal(lc loginCookie) string {
	b, _ := json.Marshal(lc)
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + base64.RawURLEncoding.EncodeToString(wl.mac(payload))
}

// open checks a cookie value's MAC and age and returns what it holds.
func (wl *WebLogin) open(value string, now time.Time) (loginCookie, error) {
	var lc loginCookie
	payload, sig, ok := strings.Cut(value, ".")
	if !ok || len(value) > maxCookieValue {
		return lc, fmt.Errorf("%w: the login cookie is malformed", ErrInvalidState)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, wl.mac(payload)) {
		return lc, fmt.Errorf("%w: the login cookie's signature does not match (tampered with, or made with another key)", ErrInvalidState)
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &lc) != nil || lc.State == "" {
		return lc, fmt.Errorf("%w: the login cookie is malformed", ErrInvalidState)
	}
	issued := time.Unix(lc.Issued, 0)
	if now.Sub(issued) > webLoginTTL || issued.Sub(now) > webLoginSkew {
		return lc, fmt.Errorf("%w: the login expired (it must finish within %v)", ErrInvalidState, webLoginTTL)
	}
	return lc, nil
}

// returnPath checks a return_to value: "" or a path on this site.
func returnPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	bad := errors.New("return_to must be a path on this site, such as /dashboard")
	// A browser reads "//host" and "/\host" as another site, and drops tabs and newlines, so
	// "/\t/host" is "//host" too.
	if len(p) > maxReturnPath || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') ||
		strings.ContainsFunc(p, unicode.IsControl) {
		return "", bad
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", bad
	}
	return p, nil
}

// loginOf returns the login the callback's browser started: its cookie, checked, with state.
func (wl *WebLogin) loginOf(r *http.Request, redirect *url.URL, state string) (loginCookie, error) {
	ck, err := r.Cookie(cookieName(redirect))
	if err != nil {
		return loginCookie{}, fmt.Errorf("%w: no login cookie (the login was not started in this browser, "+
			"or it is already over)", ErrInvalidState)
	}
	lc, err := wl.open(ck.Value, time.Now())
	if err != nil {
		return lc, err
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(lc.State)) != 1 {
		return lc, fmt.Errorf("%w: the state is not the one this browser's login sent", ErrInvalidState)
	}
	return lc, nil
}
