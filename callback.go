package twitchoauth

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/oauth2"
)

// The redirect server's one handler: the callback Twitch sends the browser back to, which checks
// the Host and the state before it spends the code.

// callbackResult is what the one honoured redirect brought: a token or the error that ends the flow.
type callbackResult struct {
	tok *oauth2.Token
	err error
}

// callbackHandler serves the redirect URL's path. It turns away requests addressed to another host
// and requests without the flow's state, honours the first redirect that has it, and sends what
// came of it on result.
type callbackHandler struct {
	hosts    map[string]bool // the Host headers answered, in canonicalHost form
	defPort  string          // the port of a Host header that names none
	path     string
	state    []byte
	document string
	exchange func(code string) (*oauth2.Token, error)

	honoured atomic.Bool
	result   chan callbackResult // buffered: the one honoured redirect never blocks on it
}

// newCallbackHandler returns the handler of one flow, whose server is bound to port. The code is
// exchanged under the flow's ctx, not the browser request's, so a tab closed during the exchange
// does not spend the code for nothing.
func newCallbackHandler(ctx context.Context, c *Client, redirectURI string, port int, state, document string) (*callbackHandler, error) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: UserAuthenticator.URL: %w", err)
	}
	if document == "" {
		document = defaultDocument
	}
	return &callbackHandler{
		hosts:    allowedHosts(u, port),
		defPort:  schemePort(u.Scheme),
		path:     cmp.Or(u.Path, "/"),
		state:    []byte(state),
		document: document,
		exchange: func(code string) (*oauth2.Token, error) {
			return c.exchangeCode(ctx, code, redirectURI)
		},
		result: make(chan callbackResult, 1),
	}, nil
}

// allowedHosts returns the Host headers, in canonicalHost form, that the redirect server answers:
// the redirect URL's host and port (its scheme's default port when it names none), and localhost,
// 127.0.0.1 and [::1] with the port bound. Any other Host is a page of another site whose name
// an attacker made resolve to this machine (DNS rebinding), and is turned away.
func allowedHosts(redirect *url.URL, port int) map[string]bool {
	hosts := map[string]bool{}
	def := schemePort(redirect.Scheme)
	if h, ok := canonicalHost(redirect.Host, def); ok {
		hosts[h] = true
	}
	p := strconv.Itoa(port)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if h, ok := canonicalHost(net.JoinHostPort(name, p), def); ok {
			hosts[h] = true
		}
	}
	return hosts
}

// schemePort returns the port a URL of scheme names when it names none.
func schemePort(scheme string) string {
	if strings.EqualFold(scheme, "https") {
		return "443"
	}
	return "80"
}

// canonicalHost returns hostport, a Host header or a URL's host, as "host:port" in one spelling
// for each place: a name in lower case without its trailing dot, an IP address in its shortest form
// (IPv6 in brackets), the port in decimal, defPort when hostport names none. It reports false for
// what is no host.
func canonicalHost(hostport, defPort string) (string, bool) {
	host, port, bracketed := hostport, "", strings.HasPrefix(hostport, "[")
	if bracketed {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return "", false
		}
		host, port = hostport[1:end], hostport[end+1:]
		if port != "" {
			if port[0] != ':' {
				return "", false
			}
			port = port[1:]
		}
	} else if i := strings.IndexByte(hostport, ':'); i >= 0 {
		host, port = hostport[:i], hostport[i+1:] // an IPv6 address without brackets fails below
	}
	n, err := strconv.ParseUint(cmp.Or(port, defPort), 10, 16)
	if err != nil || n == 0 {
		return "", false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	} else if bracketed {
		return "", false
	}
	if host == "" || strings.ContainsAny(host, "[]/%@ ") {
		return "", false
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), true
}

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if host, ok := canonicalHost(r.Host, h.defPort); !ok || !h.hosts[host] {
		writeMessage(w, http.StatusMisdirectedRequest, "Wrong address",
			"This server answers only at the app's redirect address. Start the login again from the app.")
		return
	}
	if r.URL.Path != h.path {
		writeMessage(w, http.StatusNotFound, "Not found", "There is nothing here.")
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeMessage(w, http.StatusMethodNotAllowed, "Method not allowed", "This address takes GET only.")
		return
	}
	q, ok := callbackQuery(r, len(h.state))
	if !ok {
		writeMessage(w, http.StatusBadRequest, "This login link is not valid",
			"It is longer than Twitch's answers are, so it did not come from Twitch. Start the login again from the app.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), h.state) != 1 {
		writeMessage(w, http.StatusBadRequest, "This login link is not valid",
			"It does not belong to the login the app is waiting for: it is stale, or it came from "+
				"somewhere else. Start the login again from the app.")
		return
	}
	errCode, code := q.Get("error"), q.Get("code")
	if errCode == "" && code == "" {
		writeMessage(w, http.StatusBadRequest, "Nothing to log in with",
			"Twitch's answer carried neither a code nor an error. Start the login again from the app.")
		return
	}
	if !h.honoured.CompareAndSwap(false, true) {
		writeMessage(w, http.StatusConflict, "Already done",
			"This login has already been handled. You can close this tab.")
		return
	}
	if errCode != "" {
		secrets := []string{string(h.state), code}
		err := &APIError{Endpoint: "authorize", ErrorCode: scrub(errCode, secrets),
			Message: scrub(q.Get("error_description"), secrets)}
		if errors.Is(err, ErrAccessDenied) {
			writeMessage(w, http.StatusForbidden, "Login cancelled",
				"You did not allow the app to use your Twitch account. You can close this tab.")
		} else {
			writeMessage(w, http.StatusBadRequest, "Twitch refused the login", err.Error())
		}
		h.result <- callbackResult{err: err}
		return
	}
	tok, err := h.exchange(code)
	if err != nil {
		writeMessage(w, http.StatusBadGateway, "The login failed",
			"Twitch did not give a token for the code ("+err.Error()+"). Start the login again from the app.")
		h.result <- callbackResult{err: err}
		return
	}
	writePage(w, http.StatusOK, h.document, false)
	h.result <- callbackResult{tok: tok}
}

// callbackQuery returns the query of a redirect, or false when it, its code or its state is
// longer than Twitch's can be: that one is forged, and is refused before it costs more than it
// has already (the redirect's text is scrubbed of the code, and the code is sent to Twitch).
// stateLen is the length of the state the flow sent: a caller's own, longer than
// maxCallbackParam, raises the caps by what it takes, percent-encoded.
func callbackQuery(r *http.Request, stateLen int) (url.Values, bool) {
	maxState := max(maxCallbackParam, stateLen)
	if len(r.URL.RawQuery) > maxCallbackQuery+3*(maxState-maxCallbackParam) {
		return nil, false
	}
	q := r.URL.Query()
	if len(q.Get("code")) > maxCallbackParam || len(q.Get("state")) > maxState {
		return nil, false
	}
	return q, true
}

// messagePage is the page of every answer but the success one; both %s are HTML-escaped.
const messagePage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>%[1]s</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;line-height:1.5}</style>
</head><body><h1>%[1]s</h1><p>%[2]s</p></body></html>
`

func writeMessage(w http.ResponseWriter, status int, title, msg string) {
	writePage(w, status, fmt.Sprintf(messagePage, html.EscapeString(title), html.EscapeString(msg)), true)
}

// writePage answers with an HTML page that no cache keeps and that sends no Referer (the URL holds
// the code). Pages of our own also forbid scripts, framing and anything loaded from elsewhere.
func writePage(w http.ResponseWriter, status int, page string, ours bool) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Length", strconv.Itoa(len(page)))
	hd.Set("Cache-Control", "no-store")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Content-Type-Options", "nosniff")
	if ours {
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	}
	w.WriteHeader(status)
	io.WriteString(w, page)
}
