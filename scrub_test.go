package twitchoauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// decodeSimple undoes, left to right and without lookahead, the escapes a reader of an error might
// undo: %XX when pct is set; \xXX, \uXXXX and the one-letter escapes of Go's %q (\n, \t, ...) when bs
// is set. It is written apart from the package's scrubber, to judge it.
func decodeSimple(s string, pct, bs bool) string {
	hex := func(h string) (uint64, bool) {
		v, err := strconv.ParseUint(h, 16, 32)
		return v, err == nil && !strings.ContainsAny(h, "+-_xX")
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if pct && s[i] == '%' && i+3 <= len(s) {
			if v, ok := hex(s[i+1 : i+3]); ok {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		if bs && s[i] == '\\' && i+1 < len(s) {
			switch c := s[i+1]; {
			case c == 'x' && i+4 <= len(s):
				if v, ok := hex(s[i+2 : i+4]); ok {
					b.WriteByte(byte(v))
					i += 4
					continue
				}
			case c == 'u' && i+6 <= len(s):
				if v, ok := hex(s[i+2 : i+6]); ok {
					b.WriteRune(rune(v))
					i += 6
					continue
				}
			case strings.IndexByte("abfnrtv", c) >= 0:
				b.WriteByte('\x07') // a control character, dropped below
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// dropInvisible drops control and format characters, as a terminal would show a string.
func dropInvisible(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Cc, unicode.Cf) {
			return -1
		}
		return r
	}, s)
}

// secretSurvives reports whether secret can be read in s: as is, or once %XX or backslash escapes
// (or both) are undone, with control and format characters dropped and case ignored.
func secretSurvives(s, secret string) bool {
	want := strings.ToLower(secret)
	for _, pct := range []bool{false, true} {
		for _, bs := range []bool{false, true} {
			if strings.Contains(strings.ToLower(dropInvisible(decodeSimple(s, pct, bs))), want) {
				return true
			}
		}
	}
	return false
}

func assertNoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if secretSurvives(s, sec) {
			t.Errorf("%q can be read in %q", sec, s)
		}
	}
}

// TestScrubForms: a secret is redacted in every form a server may echo it in, and nothing else is.
func TestScrubForms(t *testing.T) {
	const sec = "Rt+8/kq=Zx9w" // a refresh token with the characters a form body escapes
	pctUpper := url.QueryEscape(sec)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"raw", "bad " + sec + " here", "bad [redacted] here"},
		{"upper-cased", "BAD " + strings.ToUpper(sec), "BAD [redacted]"},
		{"lower-cased", "bad " + strings.ToLower(sec), "bad [redacted]"},
		{"form-encoded", "bad " + pctUpper, "bad [redacted]"},
		{"form-encoded lower hex", "bad " + strings.ToLower(pctUpper), "bad [redacted]"},
		{"form-encoded upper-cased", "BAD " + strings.ToUpper(pctUpper), "BAD [redacted]"},
		{"every byte percent-encoded", "bad " + percentAll(sec, "%%%02X"), "bad [redacted]"},
		{"echoed form body", "got client_id=x&refresh_token=" + pctUpper + "&grant_type=refresh_token",
			"got client_id=x&refresh_token=[redacted]&grant_type=refresh_token"},
		{"json unicode escapes", `bad \u0052\u0074\u002b\u0038\u002f\u006b\u0071\u003d\u005a\u0078\u0039\u0077`, "bad [redacted]"},
		{"json escaped slash", `bad Rt+8\/kq=Zx9w`, "bad [redacted]"},
		{"go hex escapes", `bad \x52\x74\x2B8\x2fkq=Zx9w`, "bad [redacted]"},
		{"split by a control character", "bad Rt+8/k\x00q=Zx\x1b9w!", "bad [redacted]!"},
		{"split by many", "bad R\nt\r\n+8\x7f/kq\u0085=Zx9\tw", "bad [redacted]"},
		{"split by a format character", "bad Rt+8/\u200bkq=\u202eZx9w", "bad [redacted]"},
		{"split by an escaped control", "bad Rt+8%0A/kq=\\x01Zx\\n9w\\u0000", "bad [redacted]\\u0000"},
		{"quoted by %q with a control inside", fmt.Sprintf("malformed HTTP status code %q", "Rt+8/k\x01q=Zx9w"),
			`malformed HTTP status code "[redacted]"`},
		{"mixed", "bad r%54%2b8%2F\\u004bQ\x00=%7a\\x589W", "bad [redacted]"},
		{"twice, back to back", "bad " + sec + strings.ToUpper(sec) + " " + sec, "bad [redacted] [redacted]"},
		{"preceded by a stray escape", "bad %" + sec, "bad %[redacted]"},
		{"no secret", "Invalid refresh token", "Invalid refresh token"},
		{"a near miss stays", "bad Rt+8/kq=Zx9", "bad Rt+8/kq=Zx9"},
		{"controls dropped", "line\none\x1b[31m", "lineone[31m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := scrub(tt.in, []string{"", "ab", sec})
			if got != tt.want {
				t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
			assertNoSecret(t, got, sec)
		})
	}
}

func percentAll(s, format string) string {
	var b strings.Builder
	for i := range len(s) {
		fmt.Fprintf(&b, format, s[i])
	}
	return b.String()
}

// TestScrubShortSecrets: a value shorter than minSecretLen characters is not looked for, so that an
// empty or tiny value cannot redact ordinary words; from minSecretLen on it is.
func TestScrubShortSecrets(t *testing.T) {
	const msg = "Invalid refresh token"
	if got := scrub(msg, []string{"", "e", "In", "tok"}); got != msg {
		t.Errorf("short secrets redacted words: %q", got)
	}
	if got := scrub(msg, []string{"TOKE"}); got != "Invalid refresh [redacted]n" {
		t.Errorf("a secret of %d characters: %q", minSecretLen, got)
	}
}

// TestScrubOverlapping: secrets that overlap, or a secret that overlaps itself, are redacted as one.
func TestScrubOverlapping(t *testing.T) {
	tests := []struct {
		in      string
		secrets []string
		want    string
	}{
		{"x abcdefghijkl y", []string{"abcdefgh", "efghijkl"}, "x [redacted] y"},
		{"x abcdefghijkl y", []string{"efghijkl", "abcdefgh"}, "x [redacted] y"},
		{"x abcdef y", []string{"abcdef", "bcde"}, "x [redacted] y"},
		{"x abababab y", []string{"abab"}, "x [redacted] y"},
		{"x aaaaab y", []string{"aaab"}, "x aa[redacted] y"},
	}
	for _, tt := range tests {
		if got := scrub(tt.in, tt.secrets); got != tt.want {
			t.Errorf("scrub(%q, %q) = %q, want %q", tt.in, tt.secrets, got, tt.want)
		}
	}
}

// TestScrubNonASCII: a secret with non-ASCII characters is found re-cased and percent-encoded as
// UTF-8 bytes, and a long message is cut on a character boundary.
func TestScrubNonASCII(t *testing.T) {
	const sec = "clé-Øresund-Жук"
	for _, in := range []string{
		sec,
		strings.ToUpper(sec),
		url.QueryEscape(sec),
		strings.ToLower(url.QueryEscape(strings.ToUpper(sec))),
		strconv.QuoteToASCII(sec),
	} {
		got := scrub("bad "+in, []string{sec})
		if !strings.HasPrefix(got, "bad ") || !strings.Contains(got, "[redacted]") {
			t.Errorf("scrub(%q) = %q", in, got)
		}
		assertNoSecret(t, got, sec)
	}
	long := scrub(strings.Repeat("é", 500), nil)
	if len(long) > maxMessageLen+len("…") || !utf8.ValidString(long) {
		t.Errorf("long message: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
}

// TestScrubCutInput: past maxScrubInput bytes a message is cut, and a secret the cut splits is
// redacted as far as it goes, not shown in part.
func TestScrubCutInput(t *testing.T) {
	const sec = "abcdefghijklmnop"
	pad := strings.Repeat("x", maxScrubInput-8)
	got := redact(pad+percentAll(sec, "%%%02x"), []string{sec})
	if want := pad + "[redacted]…"; got != want {
		t.Errorf("cut secret: ends %q, want %q", got[len(pad):], want[len(pad):])
	}
	got = redact(pad+"abc", []string{sec})
	if want := pad + "[redacted]…"; got != pad+"abc" && got != want {
		t.Errorf("cut near a secret's start: ends %q", got[len(pad):])
	}
}

// TestAPIErrorCauseScrubbed: what cut an answer short is part of the error's text, so it is scrubbed
// too, and errors.Is still sees it.
func TestAPIErrorCauseScrubbed(t *testing.T) {
	const sec = "s3cr3t-refresh-token"
	readErr := fmt.Errorf("bad chunk %q: %w", strings.ToUpper(sec), io.ErrUnexpectedEOF)
	_, err := checkResponse("token", 200, nil, readErr, []string{sec})
	assertNoSecret(t, err.Error(), sec)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, readErr) {
		t.Errorf("cause lost: %v", err)
	}
	if !isTransient(t.Context(), err) {
		t.Errorf("an answer cut short is not transient: %v", err)
	}
}

// newRawServer listens on loopback and answers each request with answer(form body), written as is,
// whether or not it is valid HTTP: a broken or hostile identity server.
func newRawServer(t *testing.T, answer func(body string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				body, _ := io.ReadAll(req.Body)
				io.WriteString(conn, answer(string(body)))
			})
		}
	})
	return "http://" + ln.Addr().String() + "/oauth2/"
}

// TestTransportErrorScrubsEcho: an answer so malformed that Go's HTTP client fails on it quotes the
// bad status line or header line in its error; what it echoes of the request is scrubbed there too.
func TestTransportErrorScrubsEcho(t *testing.T) {
	const (
		secret  = "Cl1ent+S3cret/Value="
		refresh = "R3fresh+T0ken/Value=="
		access  = "acc3ss-t0ken-value"
	)
	split := func(s string) string { return s[:5] + "\x01" + s[5:] }
	tests := []struct {
		name   string
		call   func(ctx context.Context, c *Client) error
		answer func(body string) string
	}{
		{"refresh token in the status line", refreshCall(refresh),
			func(string) string { return "HTTP/1.1 " + refresh + " OK\r\n\r\n" }},
		{"form body in the status line", refreshCall(refresh),
			func(body string) string { return "HTTP/1.1 " + body + " OK\r\n\r\n" }},
		{"form body as the status line", refreshCall(refresh),
			func(body string) string { return body + "\r\n\r\n" }},
		{"client secret split by a control in the status line", refreshCall(refresh),
			func(string) string { return "HTTP/1.1 " + split(secret) + " OK\r\n\r\n" }},
		{"client secret in a header line", refreshCall(refresh),
			func(string) string { return "HTTP/1.1 200 OK\r\n" + secret + "\r\nContent-Length: 0\r\n\r\n" }},
		{"upper-cased form body in a header line", refreshCall(refresh),
			func(body string) string { return "HTTP/1.1 200 OK\r\n" + strings.ToUpper(body) + "\r\n\r\n" }},
		{"refresh token split by a control in a header line", refreshCall(refresh),
			func(string) string { return "HTTP/1.1 200 OK\r\nX-Echo " + split(refresh) + "\r\n\r\n" }},
		{"access token in the status line", func(ctx context.Context, c *Client) error {
			_, err := c.ValidateToken(ctx, access)
			return err
		}, func(string) string { return "HTTP/1.1 " + access + "\r\n\r\n" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClient("client-id", secret)
			c.AuthBaseURL = newRawServer(t, tt.answer)
			c.HTTPClient = &http.Client{Transport: &http.Transport{}}
			t.Cleanup(c.HTTPClient.CloseIdleConnections)
			err := tt.call(t.Context(), c)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "malformed") {
				t.Errorf("error lost what went wrong: %q", err)
			}
			assertNoSecret(t, err.Error(), secret, refresh, access)
			if !isTransient(t.Context(), err) {
				t.Errorf("not transient: %v", err)
			}
		})
	}
}

func refreshCall(refresh string) func(ctx context.Context, c *Client) error {
	return func(ctx context.Context, c *Client) error {
		_, err := c.RefreshAccessToken(ctx, refresh)
		return err
	}
}

// TestTransportErrorUnwraps: a scrubbed transport error still matches what caused it, so callers and
// isTransient tell a done context, a timeout and a refused connection apart as before.
func TestTransportErrorUnwraps(t *testing.T) {
	c, fake := newTestClient(t)
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr + "/"
	}()
	tests := []struct {
		name      string
		setup     func(t *testing.T) (context.Context, *Client)
		is        error
		timeout   bool
		transient bool
	}{
		{"cancelled", func(t *testing.T) (context.Context, *Client) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			return ctx, c
		}, context.Canceled, false, false},
		{"deadline", func(t *testing.T) (context.Context, *Client) {
			ctx, cancel := context.WithTimeout(t.Context(), 0)
			t.Cleanup(cancel)
			return ctx, c
		}, context.DeadlineExceeded, true, false},
		{"client timeout", func(t *testing.T) (context.Context, *Client) {
			fake.Fail("validate", faketwitch.Fault{Hang: true, Count: 1})
			hc := *c
			hc.HTTPClient = &http.Client{Timeout: 1} // 1 ns: it always runs out
			return t.Context(), &hc
		}, nil, true, true},
		{"connection refused", func(t *testing.T) (context.Context, *Client) {
			hc := *c
			hc.AuthBaseURL = refused
			return t.Context(), &hc
		}, syscall.ECONNREFUSED, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cl := tt.setup(t)
			_, err := cl.ValidateToken(ctx, "some-access-token")
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			var ne net.Error
			if tt.timeout && (!errors.As(err, &ne) || !ne.Timeout()) {
				t.Errorf("%v: not a net.Error timeout", err)
			}
			if got := isTransient(ctx, err); got != tt.transient {
				t.Errorf("isTransient(%v) = %v, want %v", err, got, tt.transient)
			}
			var ae *APIError
			if errors.As(err, &ae) {
				t.Errorf("a transport error is an *APIError: %v", err)
			}
		})
	}
	fake.ClearFaults()
}

// fuzzSecretAlphabet holds what tokens and secrets are made of, plus characters that look like
// escapes and a few non-ASCII letters; never '[' or ']', so a secret cannot be read across a
// "[redacted]".
var fuzzSecretAlphabet = []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/=-_.~%\\éøЖ")

// fuzzSecret maps raw onto fuzzSecretAlphabet, padded to minSecretLen characters; it returns ""
// when the result could be read in the "[redacted]" that replaces it.
func fuzzSecret(raw string) string {
	var b strings.Builder
	for i := range max(min(len(raw), 40), minSecretLen) {
		c := byte(i * 7)
		if i < len(raw) {
			c = raw[i]
		}
		b.WriteRune(fuzzSecretAlphabet[int(c)%len(fuzzSecretAlphabet)])
	}
	s := b.String()
	if strings.Contains("[redacted]", strings.ToLower(s)) {
		return ""
	}
	return s
}

// fuzzSplitters are what a server may put between two characters of a secret, raw or escaped.
var fuzzSplitters = []string{"\x00", "\n", "\r\n", "\x1b", "\x7f", "\u0085", "\u200b", "\u202e", "\ufeff",
	"%0A", "%00", "%7f", `\n`, `\t`, `\x01`, `\x1B`, `\u0000`, `\u200B`}

// disguise writes secret as a server might echo it: each character as is, re-cased, %XX (upper or
// lower hex) per byte, \uXXXX, or \xXX per byte, chosen at random or once for the whole secret,
// with control and format characters, raw or escaped, between some of them.
func disguise(rng *rand.Rand, secret string) string {
	const forms = 7
	whole := -1
	if rng.IntN(3) == 0 {
		whole = rng.IntN(forms)
	}
	var b strings.Builder
	for i, r := range secret {
		if i > 0 && rng.IntN(4) == 0 {
			b.WriteString(fuzzSplitters[rng.IntN(len(fuzzSplitters))])
		}
		form := whole
		if form < 0 {
			form = rng.IntN(forms)
		}
		var buf [utf8.UTFMax]byte
		enc := buf[:utf8.EncodeRune(buf[:], r)]
		switch form {
		case 0:
			b.WriteRune(r)
		case 1:
			b.WriteRune(unicode.ToUpper(r))
		case 2:
			b.WriteRune(unicode.ToLower(r))
		case 3:
			for _, c := range enc {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		case 4:
			for _, c := range enc {
				fmt.Fprintf(&b, "%%%02x", c)
			}
		case 5:
			fmt.Fprintf(&b, []string{`\u%04x`, `\u%04X`}[rng.IntN(2)], r)
		case 6:
			for _, c := range enc {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		}
	}
	return b.String()
}

// FuzzScrub plants two secrets, each up to three times and each time disguised anew, at random
// places of random text, and checks that no disguise survives scrubbing, that no secret can be read
// in the result by the simple decodings of secretSurvives, and that the result holds no control
// character and respects the length cap.
func FuzzScrub(f *testing.F) {
	f.Add("invalid refresh token", "s3cr3t+Refresh/Token=", "client-secret-xyz", uint64(1))
	f.Add(`{"message":"bad %41\u00"}`, "abcd", "ABCDEF%41", uint64(2))
	f.Add("malformed HTTP status code \"\\x01", "\x00\x01\x02\x03\x04\x05", "\xff\xfe\xfd\xfc", uint64(3))
	f.Add(strings.Repeat("%", 50)+strings.Repeat(`\u00`, 20), "%%%%%%%%", `\\\\u0041`, uint64(4))
	f.Fuzz(func(t *testing.T, text, rawA, rawB string, seed uint64) {
		secrets := []string{fuzzSecret(rawA), fuzzSecret(rawB)}
		if secrets[0] == "" || secrets[1] == "" {
			return
		}
		rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		s := text
		var planted []string
		for _, sec := range secrets {
			for range 1 + rng.IntN(3) {
				form := disguise(rng, sec)
				at := rng.IntN(len(s) + 1)
				s = s[:at] + form + s[at:]
				planted = append(planted, form)
			}
		}
		got := redact(s, secrets)
		for _, form := range planted {
			if visible := dropInvisible(form); strings.Contains(got, visible) {
				t.Errorf("disguise %q survives in %q", visible, got)
			}
		}
		assertNoSecret(t, got, secrets...)
		if strings.IndexFunc(got, func(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf) }) >= 0 {
			t.Errorf("control or format character in %q", got)
		}
		capped := scrub(s, secrets)
		if len(capped) > maxMessageLen+len("…") || !utf8.ValidString(capped) {
			t.Errorf("scrub gave %d bytes, valid UTF-8 %v", len(capped), utf8.ValidString(capped))
		}
		assertNoSecret(t, capped, secrets...)
	})
}

// BenchmarkScrub scrubs the worst message a server can send: 1 MiB that keeps every partial match of
// two 40-character secrets alive.
func BenchmarkScrub(b *testing.B) {
	msg := strings.Repeat("a", 1<<20)
	secrets := []string{strings.Repeat("a", 39) + "b", strings.Repeat("A", 40)}
	b.ReportAllocs()
	for b.Loop() {
		scrub(msg, secrets)
	}
}
