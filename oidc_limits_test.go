package twitchoauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// forgedIDToken returns an RS256 id_token for c's app with a made-up kid and signature, padded
// by a claim of its own to size bytes or a little more.
func forgedIDToken(t *testing.T, c *Client, size int) string {
	t.Helper()
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "forged"})
	claims := map[string]any{"iss": c.issuer(), "aud": c.ClientID, "sub": "1234", "nonce": "n",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "pad": ""}
	sig := enc.EncodeToString(make([]byte, 256))
	short, _ := json.Marshal(claims)
	rest := size - len(enc.EncodeToString(header)) - enc.EncodedLen(len(short)) - len(sig) - 2
	claims["pad"] = strings.Repeat("p", max(rest*3/4, 0))
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeToString(header) + "." + enc.EncodeToString(payload) + "." + sig
}

// TestVerifyIDTokenLimits: an id_token longer than maxIDTokenLen is refused with
// ErrInvalidIDToken before it is parsed, allocating little, by an error that holds none of it;
// one of maxIDTokenLen bytes is still read.
func TestVerifyIDTokenLimits(t *testing.T) {
	c, _ := newTestClient(t)
	huge := forgedIDToken(t, c, 10<<20)
	var err error
	n := allocated(func() { _, err = c.VerifyIDToken(t.Context(), huge, "n") })
	t.Logf("a forged id_token of %d bytes: %d bytes allocated", len(huge), n)
	if n > 64<<10 {
		t.Errorf("a forged id_token of %d bytes allocated %d bytes, want at most 64 KiB", len(huge), n)
	}
	if !errors.Is(err, ErrInvalidIDToken) {
		t.Errorf("err = %v, want ErrInvalidIDToken", err)
	}
	if err != nil && (strings.Contains(err.Error(), huge[:40]) || strings.Contains(err.Error(), "pppp") || len(err.Error()) > 200) {
		t.Errorf("error quotes the token: %.300s", err)
	}

	atCap := forgedIDToken(t, c, maxIDTokenLen)
	atCap += strings.Repeat("A", maxIDTokenLen-len(atCap)) // the signature made longer
	if _, err := c.VerifyIDToken(t.Context(), atCap, "n"); !errors.Is(err, ErrInvalidIDToken) ||
		strings.Contains(err.Error(), "longer than") {
		t.Errorf("an id_token of %d bytes: err = %v, want it read and refused for its signature", len(atCap), err)
	}
}
