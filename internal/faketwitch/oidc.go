package faketwitch

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// idTokenTTL is the lifetime of the id_tokens the server signs.
const idTokenTTL = 15 * time.Minute

// IDTokenFault makes an id_token the server issues faulty, as an attacker or a broken server
// would send it; see Server.FailIDToken.
type IDTokenFault int

const (
	// IDTokenWrongKey signs with a key that is not in the key set, under the current key's kid.
	IDTokenWrongKey IDTokenFault = iota + 1
	// IDTokenUnknownKey signs with a key that is not in the key set, under a kid the set lacks.
	IDTokenUnknownKey
	// IDTokenExpired sets exp an hour ago (and iat before it).
	IDTokenExpired
	// IDTokenFutureIssued sets iat an hour ahead.
	IDTokenFutureIssued
	// IDTokenWrongAudience sets aud to another client.
	IDTokenWrongAudience
	// IDTokenWrongIssuer sets iss to another issuer.
	IDTokenWrongIssuer
	// IDTokenNoNonce leaves the nonce out.
	IDTokenNoNonce
	// IDTokenWrongNonce sets another nonce than the one /authorize was given.
	IDTokenWrongNonce
	// IDTokenWrongSubject sets sub to another user than the access token's.
	IDTokenWrongSubject
	// IDTokenAlgNone sends an unsigned token, "alg":"none".
	IDTokenAlgNone
	// IDTokenHS256 sends "alg":"HS256", MAC'd with the current public key (PEM) as the secret: the
	// key confusion attack.
	IDTokenHS256
	// IDTokenMissing leaves id_token out of the token answer.
	IDTokenMissing
)

// signingKey is one RSA key of the server's key set.
type signingKey struct {
	kid string
	key *rsa.PrivateKey
}

// keyPool holds RSA keys generated on first use and shared by every Server of the process, so
// that tests do not pay for a key generation per server. Servers name them with kids of their own.
var keyPool struct {
	mu   sync.Mutex
	keys []*rsa.PrivateKey
}

// poolKey returns the i-th key of keyPool, generating it if need be.
func poolKey(i int) *rsa.PrivateKey {
	keyPool.mu.Lock()
	defer keyPool.mu.Unlock()
	for len(keyPool.keys) <= i {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic("faketwitch: generate RSA key: " + err.Error())
		}
		keyPool.keys = append(keyPool.keys, k)
	}
	return keyPool.keys[i]
}

// currentKey returns the key that signs id_tokens, creating the first one. s.mu must be held.
func (s *Server) currentKey() signingKey {
	if len(s.keys) == 0 {
		s.addKey()
	}
	return s.keys[len(s.keys)-1]
}

// addKey makes a new key the signing key. s.mu must be held.
func (s *Server) addKey() {
	s.keys = append(s.keys, signingKey{kid: randString(lowerAlnum, 16), key: poolKey(s.nextKey)})
	s.nextKey++
}

// RotateKey makes a new RSA key, under a new kid, the one that signs id_tokens, as Twitch does
// when it rotates keys. /oauth2/keys serves the new key and the one before it.
func (s *Server) RotateKey() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.currentKey()
	s.addKey()
	if len(s.keys) > 2 {
		s.keys = s.keys[len(s.keys)-2:]
	}
}

// FailIDToken makes the next id_token the server issues faulty in the way f says. It applies
// once; FailIDToken(0) clears it.
func (s *Server) FailIDToken(f IDTokenFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idFault = f
}

// Issuer returns the iss of the id_tokens the server signs: the base URL without its trailing
// "/", as Twitch's is https://id.twitch.tv/oauth2. It is "" before Start.
func (s *Server) Issuer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.TrimSuffix(s.base, "/")
}

// issuer returns the issuer for a request: the base URL, or the request's host when the server
// is used in memory. s.mu must be held.
func (s *Server) issuer(r *http.Request) string {
	if s.base != "" {
		return strings.TrimSuffix(s.base, "/")
	}
	return "http://" + r.Host + "/oauth2"
}

// keysReply serves GET /oauth2/keys: the public keys of the key set, as a JWKS.
func (s *Server) keysReply(*http.Request) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.currentKey()
	keys := make([]map[string]any, 0, len(s.keys))
	for _, k := range slices.Backward(s.keys) {
		keys = append(keys, map[string]any{
			"kty": "RSA",
			"alg": "RS256",
			"use": "sig",
			"kid": k.kid,
			"n":   b64(k.key.N.Bytes()),
			"e":   b64(big.NewInt(int64(k.key.E)).Bytes()),
		})
	}
	return reply{status: http.StatusOK, body: map[string]any{"keys": keys}}
}

// discovery serves GET /oauth2/.well-known/openid-configuration, shaped like Twitch's.
func (s *Server) discovery(r *http.Request) reply {
	s.mu.Lock()
	iss := s.issuer(r)
	s.mu.Unlock()
	return reply{status: http.StatusOK, body: map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/authorize",
		"token_endpoint":                        iss + "/token",
		"userinfo_endpoint":                     iss + "/userinfo",
		"jwks_uri":                              iss + "/keys",
		"response_types_supported":              []string{"id_token", "code", "token", "code id_token", "token id_token"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
		"claims_supported": []string{"aud", "exp", "iat", "iss", "sub", "azp", "nonce",
			"email", "email_verified", "picture", "preferred_username", "updated_at"},
		"claims_parameter_supported": true,
	}}
}

// idTokenClaims returns the claims asked for in the "id_token" object of an /authorize claims
// parameter, sorted; none for a parameter that is not such JSON.
func idTokenClaims(param string) []string {
	var req struct {
		IDToken map[string]any `json:"id_token"`
	}
	if json.Unmarshal([]byte(param), &req) != nil {
		return nil
	}
	var out []string
	for k := range req.IDToken {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// signIDToken returns the id_token of a code exchange: the standard claims, the nonce
// /authorize was given, and the claims it asked for (email ones only with user:read:email),
// signed with the current key, or faulty as FailIDToken asked. ok is false when the token is to
// be left out. s.mu must be held.
func (s *Server) signIDToken(code *authCode, iss string) (tok string, ok bool) {
	f := s.idFault
	s.idFault = 0
	if f == IDTokenMissing {
		return "", false
	}
	now := s.now()
	claims := map[string]any{
		"iss": iss,
		"sub": code.userID,
		"aud": code.clientID,
		"azp": code.clientID,
		"iat": now.Unix(),
		"exp": now.Add(idTokenTTL).Unix(),
	}
	if code.nonce != "" {
		claims["nonce"] = code.nonce
	}
	u := s.users[code.userID]
	for _, c := range code.claims {
		switch c {
		case "preferred_username":
			if u != nil {
				claims[c] = u.login
			}
		case "picture":
			claims[c] = "https://static-cdn.jtvnw.net/user-default-pictures-uv/profile.png"
		case "updated_at":
			claims[c] = "2024-01-01T00:00:00Z"
		case "email", "email_verified":
			if u == nil || u.email == "" || !slices.Contains(code.scopes, "user:read:email") {
				continue
			}
			if c == "email" {
				claims[c] = u.email
			} else {
				claims[c] = true
			}
		}
	}
	key := s.currentKey()
	switch f {
	case IDTokenWrongKey:
		key.key = poolKey(s.nextKey)
	case IDTokenUnknownKey:
		key = signingKey{kid: randString(lowerAlnum, 16), key: poolKey(s.nextKey)}
	case IDTokenExpired:
		claims["iat"], claims["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
	case IDTokenFutureIssued:
		claims["iat"] = now.Add(time.Hour).Unix()
	case IDTokenWrongAudience:
		claims["aud"], claims["azp"] = "another-client-id", "another-client-id"
	case IDTokenWrongIssuer:
		claims["iss"] = "https://id.example.com/oauth2"
	case IDTokenNoNonce:
		delete(claims, "nonce")
	case IDTokenWrongNonce:
		claims["nonce"] = randString(lowerAlnum, 22)
	case IDTokenWrongSubject:
		claims["sub"] = code.userID + "0"
	}
	payload, _ := json.Marshal(claims)
	switch f {
	case IDTokenAlgNone:
		return b64json(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64(payload) + ".", true
	case IDTokenHS256:
		der, _ := x509.MarshalPKIXPublicKey(&key.key.PublicKey)
		secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		signed := b64json(map[string]any{"alg": "HS256", "typ": "JWT", "kid": key.kid}) + "." + b64(payload)
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(signed))
		return signed + "." + b64(mac.Sum(nil)), true
	}
	signed := b64json(map[string]any{"alg": "RS256", "typ": "JWT", "kid": key.kid}) + "." + b64(payload)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key.key, crypto.SHA256, sum[:])
	if err != nil {
		panic("faketwitch: sign id_token: " + err.Error())
	}
	return signed + "." + b64(sig), true
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return b64(b)
}
