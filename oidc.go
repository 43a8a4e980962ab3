package twitchoauth

import (
	"cmp"
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// ErrInvalidIDToken: an OIDC id_token failed verification (signature, issuer, audience, expiry,
// issue time or nonce), or a login that asked for one did not get one.
var ErrInvalidIDToken = errors.New("twitchoauth: invalid id_token")

const (
	// idTokenSkew is how far in the future an id_token's iat may lie: clocks differ.
	idTokenSkew = 5 * time.Minute
	// keysMaxAge is how long a fetched key set is trusted before it is fetched again, so that a
	// key Twitch withdraws stops verifying within that time.
	keysMaxAge = time.Hour
	// keysMissFloor is how long after a fetch for a token whose kid the cached keys lack no other
	// such token makes another: a flood of tokens naming made-up kids costs Twitch one request a
	// minute, and a key Twitch rotated in is found at once unless such a fetch has just happened.
	keysMissFloor = time.Minute
	// maxKeyCaches bounds the key sets kept, one per key set URL.
	maxKeyCaches = 16
	// minRSABits is the smallest RSA key a key set may hold.
	minRSABits = 2048
	// maxIDTokenLen caps the id_tokens VerifyIDToken parses: Twitch's are about 1 KB, and a
	// forged one of any length would be decoded, parsed and scrubbed whole.
	maxIDTokenLen = 16 << 10
)

// IDTokenClaims is what a verified OIDC id_token says
// (https://dev.twitch.tv/docs/authentication/getting-tokens-oidc/#validating-an-id-token).
// Twitch puts the optional claims in only when the authorize URL's claims parameter asked for
// them, and email only when the token also has the user:read:email scope.
type IDTokenClaims struct {
	Subject           string         // "sub": the user ID
	PreferredUsername string         // "preferred_username": the user's display login, when asked for
	Email             string         // "email", when asked for, with the user:read:email scope
	EmailVerified     bool           // "email_verified", likewise
	Picture           string         // "picture": the profile image URL, when asked for
	Issuer            string         // "iss": https://id.twitch.tv/oauth2
	Audience          []string       // "aud": the client ID
	IssuedAt          time.Time      // "iat"
	Expiry            time.Time      // "exp"
	Nonce             string         // "nonce", as the authorize URL sent it
	Raw               map[string]any // every claim as sent
}

// issuer returns the iss Twitch's id_tokens carry for c: AuthBaseURL without its trailing "/",
// which for DefaultAuthBaseURL is https://id.twitch.tv/oauth2.
func (c *Client) issuer() string {
	return strings.TrimRight(cmp.Or(c.AuthBaseURL, DefaultAuthBaseURL), "/")
}

// VerifyIDToken verifies an OIDC id_token that Twitch issued to this app
// (https://dev.twitch.tv/docs/authentication/getting-tokens-oidc/) and returns its claims. It
// accepts only RS256, checks the signature against Twitch's key set (/oauth2/keys, fetched
// through HTTPClient, kept for an hour and fetched again once when the token names a key it
// lacks), and checks that iss is the issuer (https://id.twitch.tv/oauth2, or AuthBaseURL without
// its trailing "/" when that is set), that aud holds ClientID, that exp has not passed, that iat
// is not in the future, and that the nonce is nonce, compared in constant time. A token over
// 16 KiB (Twitch's are about 1 KB) is refused unread.
//
// A nonce of "" skips the nonce check: do that only for a token the program got straight from
// Twitch's token endpoint, since without a nonce a token copied from another login is accepted
// until it expires. [WebLogin] always sends and checks one.
//
// A token that fails a check gives an error that Is [ErrInvalidIDToken]; a failure to get the key
// set gives the request's error ([*APIError] with Endpoint "keys", or the transport's). No error
// holds the token.
func (c *Client) VerifyIDToken(ctx context.Context, rawIDToken, nonce string) (*IDTokenClaims, error) {
	if c.ClientID == "" {
		return nil, errors.New("twitchoauth: VerifyIDToken: the Client has no ClientID to check aud against")
	}
	if rawIDToken == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidIDToken)
	}
	if len(rawIDToken) > maxIDTokenLen {
		return nil, fmt.Errorf("%w: %d bytes, longer than Twitch's (%d at most)", ErrInvalidIDToken, len(rawIDToken), maxIDTokenLen)
	}
	secrets := []string{rawIDToken}
	ks := &clientKeys{c: c, cache: keyCacheFor(c.endpointURL("keys"))}
	v := oidc.NewVerifier(c.issuer(), ks, &oidc.Config{ClientID: c.ClientID, SupportedSigningAlgs: []string{oidc.RS256}})
	t, err := v.Verify(ctx, rawIDToken)
	switch {
	case ks.fetchErr != nil:
		return nil, ks.fetchErr // no verdict on the token: the keys could not be had
	case err != nil && ctx.Err() != nil:
		return nil, fmt.Errorf("twitchoauth: verify id_token: %w", ctx.Err())
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidIDToken, scrubError(err, secrets))
	}
	var cl struct {
		AuthorizedParty   string `json:"azp"`
		PreferredUsername string `json:"preferred_username"`
		Email             string `json:"email"`
		EmailVerified     bool   `json:"email_verified"`
		Picture           string `json:"picture"`
	}
	var raw map[string]any
	if err := t.Claims(&cl); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrInvalidIDToken, scrubError(err, secrets))
	}
	if err := t.Claims(&raw); err != nil {
		return nil, fmt.Errorf("%w: claims: %w", ErrInvalidIDToken, scrubError(err, secrets))
	}
	switch {
	case t.IssuedAt.IsZero():
		return nil, fmt.Errorf("%w: it has no iat", ErrInvalidIDToken)
	case t.IssuedAt.After(time.Now().Add(idTokenSkew)):
		return nil, fmt.Errorf("%w: issued in the future (iat %s)", ErrInvalidIDToken, t.IssuedAt.UTC().Format(time.RFC3339))
	case len(t.Audience) > 1 && cl.AuthorizedParty != c.ClientID:
		return nil, fmt.Errorf("%w: several audiences, and azp is not the client ID", ErrInvalidIDToken)
	case nonce != "" && t.Nonce == "":
		return nil, fmt.Errorf("%w: it carries no nonce, and the login sent one", ErrInvalidIDToken)
	case nonce != "" && subtle.ConstantTimeCompare([]byte(t.Nonce), []byte(nonce)) != 1:
		return nil, fmt.Errorf("%w: its nonce is not the one the login sent", ErrInvalidIDToken)
	}
	return &IDTokenClaims{
		Subject:           t.Subject,
		PreferredUsername: cl.PreferredUsername,
		Email:             cl.Email,
		EmailVerified:     cl.EmailVerified,
		Picture:           cl.Picture,
		Issuer:            t.Issuer,
		Audience:          t.Audience,
		IssuedAt:          t.IssuedAt,
		Expiry:            t.Expiry,
		Nonce:             t.Nonce,
		Raw:               raw,
	}, nil
}

// keyCache is the key set fetched from one URL, shared by every Client that verifies with it.
// Fetches run in the calling goroutine, with the caller's context and Client, one at a time.
type keyCache struct {
	sem chan struct{} // holds a token while a fetch runs

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
	gen     uint64    // counts the fetches that succeeded
	missed  time.Time // when a token's unknown kid last made a fetch
}

var keyCaches struct {
	mu sync.Mutex
	m  map[string]*keyCache
}

// keyCacheFor returns the key cache of the key set at url, creating it.
func keyCacheFor(url string) *keyCache {
	keyCaches.mu.Lock()
	defer keyCaches.mu.Unlock()
	if kc := keyCaches.m[url]; kc != nil {
		return kc
	}
	if keyCaches.m == nil {
		keyCaches.m = map[string]*keyCache{}
	}
	if len(keyCaches.m) >= maxKeyCaches {
		for u := range keyCaches.m { // drop one: at worst it is fetched again
			delete(keyCaches.m, u)
			break
		}
	}
	kc := &keyCache{sem: make(chan struct{}, 1)}
	keyCaches.m[url] = kc
	return kc
}

// current returns the cached keys, the fetch they came from, and whether they are recent enough
// to use.
func (kc *keyCache) current() ([]jose.JSONWebKey, uint64, bool) {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return kc.keys, kc.gen, !kc.fetched.IsZero() && time.Since(kc.fetched) < keysMaxAge
}

// refresh fetches the key set with c, unless a fetch has succeeded since the one numbered gen:
// then it returns that fetch's keys. miss says the cached keys are recent but lack the token's
// key: then it fetches only if no miss did within keysMissFloor, and otherwise returns the
// cached keys.
func (kc *keyCache) refresh(ctx context.Context, c *Client, gen uint64, miss bool) ([]jose.JSONWebKey, error) {
	select {
	case kc.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("twitchoauth: keys: %w", ctx.Err())
	}
	defer func() { <-kc.sem }()
	kc.mu.Lock()
	if kc.gen != gen || (miss && !kc.missed.IsZero() && time.Since(kc.missed) < keysMissFloor) {
		keys := kc.keys
		kc.mu.Unlock()
		return keys, nil
	}
	if miss {
		kc.missed = time.Now()
	}
	kc.mu.Unlock()
	body, err := c.do(ctx, request{endpoint: "keys", method: http.MethodGet})
	if err != nil {
		return nil, err
	}
	keys, err := parseKeySet(body)
	if err != nil {
		return nil, answerError("keys", err)
	}
	kc.mu.Lock()
	defer kc.mu.Unlock()
	kc.keys, kc.fetched, kc.gen = keys, time.Now(), kc.gen+1
	return keys, nil
}

// parseKeySet reads a JWKS, keeping the RSA signing keys of 2048 bits or more that are for
// RS256 (or name no algorithm) and skipping any other key.
func parseKeySet(body []byte) ([]jose.JSONWebKey, error) {
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("answer is not a JSON key set")
	}
	var keys []jose.JSONWebKey
	for _, b := range raw.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(b, &k) != nil {
			continue
		}
		var pub *rsa.PublicKey
		switch key := k.Key.(type) {
		case *rsa.PublicKey:
			pub = key
		case *rsa.PrivateKey:
			pub = &key.PublicKey
		default:
			continue
		}
		if (k.Algorithm != "" && k.Algorithm != string(jose.RS256)) || (k.Use != "" && k.Use != "sig") ||
			pub.N.BitLen() < minRSABits {
			continue
		}
		keys = append(keys, jose.JSONWebKey{Key: pub, KeyID: k.KeyID, Algorithm: string(jose.RS256), Use: "sig"})
	}
	if len(keys) == 0 {
		return nil, errors.New("key set holds no RS256 key")
	}
	return keys, nil
}

// clientKeys is the oidc.KeySet of one verification: the shared cache, fetched through c.
type clientKeys struct {
	c        *Client
	cache    *keyCache
	fetchErr error // why the key set could not be fetched, if it could not
}

// VerifySignature returns the payload of jwt if a key of the key set signed it with RS256. The
// cached keys are tried first; when none of them is the token's (its kid is unknown, or it names
// none and none verifies), or they are older than keysMaxAge, the key set is fetched again, once;
// for an unknown kid, at most once per keysMissFloor.
func (k *clientKeys) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("not one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, gen, fresh := k.cache.current()
	if fresh {
		payload, known := verifyWith(jws, keys, kid)
		if payload != nil {
			return payload, nil
		}
		if known {
			return nil, errors.New("signature does not match the key it names")
		}
	}
	keys, err = k.cache.refresh(ctx, k.c, gen, fresh)
	if err != nil {
		k.fetchErr = err
		return nil, err
	}
	if payload, _ := verifyWith(jws, keys, kid); payload != nil {
		return payload, nil
	}
	if kid != "" {
		return nil, errors.New("no key of the key set has the token's kid, or its signature does not match")
	}
	return nil, errors.New("no key of the key set verifies the signature")
}

// verifyWith returns the payload of jws if one of keys with this kid (any key, for kid "")
// verifies it, and whether keys hold a key with this (non-empty) kid.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid string) (payload []byte, known bool) {
	for i := range keys {
		if kid != "" && keys[i].KeyID != kid {
			continue
		}
		known = kid != ""
		if p, err := jws.Verify(&keys[i]); err == nil {
			return p, known
		}
	}
	return nil, known
}
