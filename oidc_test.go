package twitchoauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// idTokenFrom runs an OIDC login on the fake with this nonce, playing the browser, and returns
// the id_token of the code exchange; fault, if not 0, makes it faulty.
func idTokenFrom(t *testing.T, c *Client, fake *faketwitch.Server, nonce string, fault faketwitch.IDTokenFault) string {
	t.Helper()
	if fault != 0 {
		fake.FailIDToken(fault)
	}
	q := url.Values{"client_id": {c.ClientID}, "redirect_uri": {faketwitch.RedirectURL}, "response_type": {"code"},
		"scope": {"openid user:read:email"}, "state": {"s"}, "nonce": {nonce},
		"claims": {`{"id_token":{"preferred_username":null,"email":null}}`}}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(c.endpointURL("authorize") + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	tok, err := c.exchangeCode(t.Context(), loc.Query().Get("code"), faketwitch.RedirectURL)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" && fault != faketwitch.IDTokenMissing {
		t.Fatal("no id_token")
	}
	return raw
}

func TestVerifyIDToken(t *testing.T) {
	c, fake := newTestClient(t)
	raw := idTokenFrom(t, c, fake, "n-0123", 0)

	cl, err := c.VerifyIDToken(t.Context(), raw, "n-0123")
	if err != nil {
		t.Fatal(err)
	}
	if cl.Subject != faketwitch.UserID || cl.PreferredUsername != faketwitch.UserLogin || cl.Email != "fakeuser@example.com" ||
		cl.Nonce != "n-0123" || len(cl.Audience) != 1 || cl.Audience[0] != c.ClientID || cl.Raw["sub"] != faketwitch.UserID {
		t.Errorf("claims = %+v", cl)
	}
	if _, err := c.VerifyIDToken(t.Context(), raw, ""); err != nil {
		t.Errorf("nonce \"\" (no check): %v", err)
	}

	slash := *c
	slash.AuthBaseURL = strings.TrimSuffix(c.AuthBaseURL, "/")
	other := *c
	other.ClientID = "another-client"
	for _, tc := range []struct {
		name, token, nonce, want string
		c                        *Client
	}{
		{"wrong nonce", raw, "n-9999", "nonce is not", c},
		{"another client's token", raw, "", "audience", &other},
		{"another issuer", raw, "", "different provider", func() *Client {
			o := *c
			o.AuthBaseURL = strings.Replace(c.AuthBaseURL, "127.0.0.1", "localhost", 1)
			return &o
		}()},
		{"empty", "", "", "empty", c},
		{"garbage", "not.a.jwt", "", "malformed", c},
		{"payload swapped", swapPayload(raw, idTokenFrom(t, c, fake, "n-other", faketwitch.IDTokenWrongSubject)), "", "signature", c},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.VerifyIDToken(t.Context(), tc.token, tc.nonce)
			if !errors.Is(err, ErrInvalidIDToken) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalidIDToken saying %q", err, tc.want)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error holds the token: %v", err)
			}
		})
	}
	t.Run("AuthBaseURL without trailing slash", func(t *testing.T) {
		if _, err := slash.VerifyIDToken(t.Context(), raw, "n-0123"); err != nil {
			t.Error(err)
		}
	})
}

// swapPayload returns a's header and signature around b's payload.
func swapPayload(a, b string) string {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	return pa[0] + "." + pb[1] + "." + pa[2]
}

// TestVerifyIDTokenAttacks runs every faulty id_token of the fake through VerifyIDToken.
func TestVerifyIDTokenAttacks(t *testing.T) {
	c, fake := newTestClient(t)
	for _, tc := range []struct {
		name  string
		fault faketwitch.IDTokenFault
		want  string
	}{
		{"alg none", faketwitch.IDTokenAlgNone, `unexpected signature algorithm "none"`},
		{"HS256 with the public key as secret", faketwitch.IDTokenHS256, `unexpected signature algorithm "HS256"`},
		{"wrong key", faketwitch.IDTokenWrongKey, "does not match"},
		{"unknown kid", faketwitch.IDTokenUnknownKey, "no key of the key set"},
		{"wrong aud", faketwitch.IDTokenWrongAudience, "expected audience"},
		{"wrong iss", faketwitch.IDTokenWrongIssuer, "issued by a different provider"},
		{"expired", faketwitch.IDTokenExpired, "expired"},
		{"iat in the future", faketwitch.IDTokenFutureIssued, "future"},
		{"nonce missing", faketwitch.IDTokenNoNonce, "no nonce"},
		{"wrong nonce", faketwitch.IDTokenWrongNonce, "nonce is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := idTokenFrom(t, c, fake, "the-nonce", tc.fault)
			cl, err := c.VerifyIDToken(t.Context(), raw, "the-nonce")
			if !errors.Is(err, ErrInvalidIDToken) || !strings.Contains(err.Error(), tc.want) || cl != nil {
				t.Errorf("VerifyIDToken = %+v, %v; want ErrInvalidIDToken saying %q", cl, err, tc.want)
			}
		})
	}
}

// TestVerifyIDTokenKeyRotation: the key set is fetched once and cached; a token under a kid the
// cache lacks fetches it again, once; a token under a known kid with a bad signature does not.
func TestVerifyIDTokenKeyRotation(t *testing.T) {
	c, fake := newTestClient(t)
	keys := func() int { return fake.CountRequests("keys") }
	verify := func(raw string) error {
		_, err := c.VerifyIDToken(t.Context(), raw, "n")
		return err
	}
	first := idTokenFrom(t, c, fake, "n", 0)
	for range 3 {
		if err := verify(first); err != nil {
			t.Fatal(err)
		}
	}
	if keys() != 1 {
		t.Fatalf("%d key set fetches for one key, want 1", keys())
	}
	if err := verify(idTokenFrom(t, c, fake, "n", faketwitch.IDTokenWrongKey)); !errors.Is(err, ErrInvalidIDToken) || keys() != 1 {
		t.Errorf("known kid, wrong key: %v after %d fetches; want ErrInvalidIDToken and no fetch", err, keys())
	}

	fake.RotateKey()
	rotated := idTokenFrom(t, c, fake, "n", 0)
	if err := verify(rotated); err != nil || keys() != 2 {
		t.Fatalf("after a rotation: %v after %d fetches; want success after 2", err, keys())
	}
	if err := verify(first); err != nil || keys() != 2 { // the set still holds the old key
		t.Errorf("the old key's token: %v after %d fetches", err, keys())
	}
	// Within a minute of the rotation's fetch, made-up kids fetch nothing more, however many.
	for range 20 {
		if err := verify(idTokenFrom(t, c, fake, "n", faketwitch.IDTokenUnknownKey)); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("unknown kid: %v, want ErrInvalidIDToken", err)
		}
	}
	if keys() != 2 {
		t.Errorf("20 tokens with made-up kids made %d key set fetches in all, want 2: one a minute at most", keys())
	}
}

// TestVerifyIDTokenOneFetch: many verifications on a cold cache fetch the key set once.
func TestVerifyIDTokenOneFetch(t *testing.T) {
	c, fake := newTestClient(t)
	raw := idTokenFrom(t, c, fake, "n", 0)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := c.VerifyIDToken(t.Context(), raw, "n"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := fake.CountRequests("keys"); n != 1 {
		t.Errorf("%d key set fetches, want 1", n)
	}
}

// TestVerifyIDTokenKeysFail: a key set that cannot be had is the request's error, not a verdict
// on the token; a ctx that ends during the fetch ends the call.
func TestVerifyIDTokenKeysFail(t *testing.T) {
	c, fake := newTestClient(t)
	raw := idTokenFrom(t, c, fake, "n", 0)

	fake.Fail("keys", faketwitch.Fault{Status: 503, Body: `{"status":503,"message":"down"}`, Count: 1})
	_, err := c.VerifyIDToken(t.Context(), raw, "n")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Endpoint != "keys" || ae.StatusCode != 503 || errors.Is(err, ErrInvalidIDToken) {
		t.Errorf("key set 503: %v", err)
	}

	fake.Fail("keys", faketwitch.Fault{Status: 200, Body: `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, Count: 1})
	if _, err := c.VerifyIDToken(t.Context(), raw, "n"); !errors.As(err, &ae) || !strings.Contains(err.Error(), "no RS256 key") {
		t.Errorf("key set without an RSA key: %v", err)
	}

	fake.Fail("keys", faketwitch.Fault{Hang: true, Count: 1})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := c.VerifyIDToken(ctx, raw, "n")
		done <- err
	}()
	for fake.CountRequests("keys") < 3 {
		time.Sleep(time.Millisecond) // bounded by the fetch's own timeout
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ctx canceled during the fetch: %v", err)
	}
	// The fetch ran in the caller's goroutine: nothing of it is left behind.
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "go-oidc") ||
		strings.Contains(stacks, "keyCache") {
		t.Errorf("a goroutine of the verification outlived it:\n%s", stacks)
	}

	if _, err := c.VerifyIDToken(t.Context(), raw, "n"); err != nil {
		t.Errorf("once the key set answers: %v", err)
	}
}

func TestClientIssuer(t *testing.T) {
	for base, want := range map[string]string{
		"":                              "https://id.twitch.tv/oauth2",
		DefaultAuthBaseURL:              "https://id.twitch.tv/oauth2",
		"http://127.0.0.1:8080/oauth2/": "http://127.0.0.1:8080/oauth2",
		"http://127.0.0.1:8080/oauth2":  "http://127.0.0.1:8080/oauth2",
	} {
		if got := (&Client{AuthBaseURL: base}).issuer(); got != want {
			t.Errorf("AuthBaseURL %q: issuer %q, want %q", base, got, want)
		}
	}
}
