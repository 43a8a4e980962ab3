package twitchoauthtest

import "github.com/twitchoauth/twitchoauth/internal/faketwitch"

// IDTokenFault is what [Server.FailIDToken] makes wrong with an id_token, as a forger or a broken
// server would send it. [twitchoauth.Client.VerifyIDToken] and [twitchoauth.WebLogin] refuse each.
type IDTokenFault int

const (
	// IDTokenWrongKey: signed by a key that is not in the key set, under the current key's kid.
	IDTokenWrongKey = IDTokenFault(faketwitch.IDTokenWrongKey)
	// IDTokenUnknownKey: signed by a key that is not in the key set, under a kid the set lacks.
	IDTokenUnknownKey = IDTokenFault(faketwitch.IDTokenUnknownKey)
	// IDTokenExpired: exp an hour ago.
	IDTokenExpired = IDTokenFault(faketwitch.IDTokenExpired)
	// IDTokenFutureIssued: iat an hour ahead.
	IDTokenFutureIssued = IDTokenFault(faketwitch.IDTokenFutureIssued)
	// IDTokenWrongAudience: aud is another app's client ID.
	IDTokenWrongAudience = IDTokenFault(faketwitch.IDTokenWrongAudience)
	// IDTokenWrongIssuer: iss is another issuer.
	IDTokenWrongIssuer = IDTokenFault(faketwitch.IDTokenWrongIssuer)
	// IDTokenNoNonce: the nonce is left out.
	IDTokenNoNonce = IDTokenFault(faketwitch.IDTokenNoNonce)
	// IDTokenWrongNonce: another nonce than the one the authorize URL sent.
	IDTokenWrongNonce = IDTokenFault(faketwitch.IDTokenWrongNonce)
	// IDTokenWrongSubject: sub is another user than the access token's.
	IDTokenWrongSubject = IDTokenFault(faketwitch.IDTokenWrongSubject)
	// IDTokenAlgNone: unsigned, "alg":"none".
	IDTokenAlgNone = IDTokenFault(faketwitch.IDTokenAlgNone)
	// IDTokenHS256: "alg":"HS256", MAC'd with the public key as the secret (key confusion).
	IDTokenHS256 = IDTokenFault(faketwitch.IDTokenHS256)
	// IDTokenMissing: no id_token in the token answer at all.
	IDTokenMissing = IDTokenFault(faketwitch.IDTokenMissing)
)

// FailIDToken makes the next id_token the Server issues (in the code exchange of a login whose
// scope holds openid) faulty in the way f says. It applies once; FailIDToken(0) clears it.
func (s *Server) FailIDToken(f IDTokenFault) { s.fake.FailIDToken(faketwitch.IDTokenFault(f)) }

// RotateKey makes a new RSA key, under a new kid, the one that signs id_tokens, as Twitch does when
// it rotates its keys; /oauth2/keys serves it and the one before it. A verifier that cached the key
// set must fetch it again to verify the next id_token.
func (s *Server) RotateKey() { s.fake.RotateKey() }
