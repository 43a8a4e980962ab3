package faketwitch

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// oidcLogin runs /authorize and /token for the default app with scope and claims, and returns
// the token answer.
func oidcLogin(t *testing.T, s *Server, scope, nonce, claims string) map[string]any {
	t.Helper()
	q := url.Values{"client_id": {ClientID}, "redirect_uri": {RedirectURL}, "response_type": {"code"},
		"scope": {scope}, "state": {"st"}, "nonce": {nonce}, "claims": {claims}}
	rec, _ := serve(t, s, http.MethodGet, "/oauth2/authorize?"+q.Encode(), nil, "")
	loc, _ := url.Parse(rec.Header().Get("Location"))
	status, m := postToken(t, s, url.Values{"grant_type": {"authorization_code"}, "client_id": {ClientID},
		"client_secret": {ClientSecret}, "code": {loc.Query().Get("code")}, "redirect_uri": {RedirectURL}})
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, m)
	}
	return m
}

// jwks returns the server's key set by kid.
func jwks(t *testing.T, s *Server) map[string]*rsa.PublicKey {
	t.Helper()
	_, m := serve(t, s, http.MethodGet, "/oauth2/keys", nil, "")
	out := map[string]*rsa.PublicKey{}
	for _, k := range m["keys"].([]any) {
		k := k.(map[string]any)
		if k["kty"] != "RSA" || k["alg"] != "RS256" || k["use"] != "sig" {
			t.Errorf("key %v", k)
		}
		n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
		e, _ := base64.RawURLEncoding.DecodeString(k["e"].(string))
		out[k["kid"].(string)] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	return out
}

// decodeJWT checks an RS256 token's signature against keys and returns its header and claims.
func decodeJWT(t *testing.T, tok string, keys map[string]*rsa.PublicKey) (header, claims map[string]any, verified bool) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%d parts", len(parts))
	}
	for i, v := range []*map[string]any{&header, &claims} {
		b, _ := base64.RawURLEncoding.DecodeString(parts[i])
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	kid, _ := header["kid"].(string)
	if k := keys[kid]; k != nil && header["alg"] == "RS256" {
		verified = rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	}
	return header, claims, verified
}

func TestIDToken(t *testing.T) {
	s := New()
	base := s.Start()
	t.Cleanup(s.Close)
	iss := strings.TrimSuffix(base, "/")

	m := oidcLogin(t, s, "openid user:read:email", "nonce-1", `{"id_token":{"email":null,"preferred_username":null}}`)
	_, cl, ok := decodeJWT(t, m["id_token"].(string), jwks(t, s))
	if !ok {
		t.Fatal("id_token does not verify against /keys")
	}
	if cl["iss"] != iss || cl["aud"] != ClientID || cl["sub"] != UserID || cl["nonce"] != "nonce-1" ||
		cl["preferred_username"] != UserLogin || cl["email"] != "fakeuser@example.com" || cl["picture"] != nil {
		t.Errorf("claims = %v", cl)
	}

	m = oidcLogin(t, s, "openid", "", `{"id_token":{"email":null}}`)
	if _, cl, _ := decodeJWT(t, m["id_token"].(string), jwks(t, s)); cl["email"] != nil || cl["nonce"] != nil {
		t.Errorf("email without user:read:email, or a nonce never sent: %v", cl)
	}
	if m = oidcLogin(t, s, "chat:read", "n", ""); m["id_token"] != nil {
		t.Error("id_token without openid")
	}

	old := jwks(t, s)
	s.RotateKey()
	m = oidcLogin(t, s, "openid", "n", "")
	h, _, ok := decodeJWT(t, m["id_token"].(string), jwks(t, s))
	if old[h["kid"].(string)] != nil || !ok || len(jwks(t, s)) != 2 {
		t.Errorf("after RotateKey: kid %v known before, verified %v, %d keys", h["kid"], ok, len(jwks(t, s)))
	}

	for _, f := range []IDTokenFault{IDTokenWrongKey, IDTokenUnknownKey, IDTokenAlgNone, IDTokenHS256} {
		s.FailIDToken(f)
		m = oidcLogin(t, s, "openid", "n", "")
		if _, _, ok := decodeJWT(t, m["id_token"].(string), jwks(t, s)); ok {
			t.Errorf("fault %d: the token verifies", f)
		}
	}
	s.FailIDToken(IDTokenMissing)
	if m = oidcLogin(t, s, "openid", "n", ""); m["id_token"] != nil {
		t.Error("IDTokenMissing sent an id_token")
	}

	_, d := serve(t, s, http.MethodGet, "/oauth2/.well-known/openid-configuration", nil, "")
	if d["issuer"] != iss || d["jwks_uri"] != iss+"/keys" {
		t.Errorf("discovery = %v", d)
	}
}
