// Package wire decodes the JSON answers of Twitch's identity server, and of the one Helix endpoint
// the package calls itself (GET /helix/authorization/users). It knows Twitch's departures from
// the RFCs (error bodies of the form {"status","message","error"}, "scope" as a JSON array, "scopes":
// null) and nothing else: no HTTP, no policy. Every function accepts arbitrary bytes without
// panicking.
package wire

import (
	"encoding/json"
	"errors"
	"strings"
)

// ErrNotJSON is returned for a body that is not a JSON object.
var ErrNotJSON = errors.New("answer is not a JSON object")

// ErrorBody is Twitch's error answer:
// {"status":400,"message":"Invalid refresh token","error":"Bad Request"}. Its status repeats the
// HTTP status and is not kept. The RFC 6749 field error_description is read too, for servers that
// speak it.
type ErrorBody struct {
	Message          string
	Error            string
	ErrorDescription string
}

// ParseError reads an error answer. ok is false when body is not a JSON object holding a message or an
// error; the fields then say nothing.
func ParseError(body []byte) (e ErrorBody, ok bool) {
	var raw struct {
		Message          any `json:"message"`
		Error            any `json:"error"`
		ErrorDescription any `json:"error_description"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return ErrorBody{}, false
	}
	e.Message = asString(raw.Message)
	e.Error = asString(raw.Error)
	e.ErrorDescription = asString(raw.ErrorDescription)
	if e.Message == "" && e.Error == "" && e.ErrorDescription == "" {
		return ErrorBody{}, false
	}
	return e, true
}

// asString returns v when it is a JSON string, and "" otherwise.
func asString(v any) string {
	s, _ := v.(string)
	return s
}

// Token is a successful answer of the token endpoint (and of twitch-cli's mock authorize).
type Token struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int64 // 0 when absent; negative when the token is already expired
	Scope        []string
	TokenType    string
	IDToken      string // the OIDC id_token, when the scope held openid; "" otherwise
}

// ParseToken reads a token answer. It fails when the body is not a JSON object or lacks access_token.
// The scope is read as Twitch sends it (a JSON array) or as RFC 6749 does (a space-separated string);
// empty strings, like twitch-cli's [""], are dropped.
func ParseToken(body []byte) (Token, error) {
	var raw struct {
		AccessToken  string          `json:"access_token"`
		RefreshToken string          `json:"refresh_token"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		Scope        json.RawMessage `json:"scope"`
		TokenType    string          `json:"token_type"`
		IDToken      string          `json:"id_token"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Token{}, ErrNotJSON
	}
	if raw.AccessToken == "" {
		return Token{}, errors.New("answer lacks access_token")
	}
	return Token{
		AccessToken:  raw.AccessToken,
		RefreshToken: raw.RefreshToken,
		ExpiresIn:    signedSeconds(raw.ExpiresIn),
		Scope:        scopeList(raw.Scope),
		TokenType:    raw.TokenType,
		IDToken:      raw.IDToken,
	}, nil
}

// Validation is the answer of GET /validate.
type Validation struct {
	ClientID  string
	Login     string
	UserID    string
	Scopes    []string
	ExpiresIn int64 // 0 for a token that never expires; negative for one already expired
}

// ParseValidation reads a validate answer. It fails when the body is not a JSON object or lacks
// client_id.
func ParseValidation(body []byte) (Validation, error) {
	var raw struct {
		ClientID  string          `json:"client_id"`
		Login     *string         `json:"login"`
		UserID    *string         `json:"user_id"`
		Scopes    json.RawMessage `json:"scopes"`
		ExpiresIn json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Validation{}, ErrNotJSON
	}
	if raw.ClientID == "" {
		return Validation{}, errors.New("answer lacks client_id")
	}
	v := Validation{ClientID: raw.ClientID, Scopes: scopeList(raw.Scopes), ExpiresIn: signedSeconds(raw.ExpiresIn)}
	if raw.Login != nil {
		v.Login = *raw.Login
	}
	if raw.UserID != nil {
		v.UserID = *raw.UserID
	}
	return v, nil
}

// Device is the answer of POST /device.
type Device struct {
	DeviceCode      string
	UserCode        string
	VerificationURI string
	ExpiresIn       int64
	Interval        int64
}

// ParseDevice reads a device answer. It fails when the body is not a JSON object or lacks device_code,
// user_code or verification_uri. Interval and ExpiresIn are 0 when absent.
func ParseDevice(body []byte) (Device, error) {
	var raw struct {
		DeviceCode      string          `json:"device_code"`
		UserCode        string          `json:"user_code"`
		VerificationURI string          `json:"verification_uri"`
		ExpiresIn       json.RawMessage `json:"expires_in"`
		Interval        json.RawMessage `json:"interval"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return Device{}, ErrNotJSON
	}
	switch {
	case raw.DeviceCode == "":
		return Device{}, errors.New("answer lacks device_code")
	case raw.UserCode == "":
		return Device{}, errors.New("answer lacks user_code")
	case raw.VerificationURI == "":
		return Device{}, errors.New("answer lacks verification_uri")
	}
	return Device{
		DeviceCode:      raw.DeviceCode,
		UserCode:        raw.UserCode,
		VerificationURI: raw.VerificationURI,
		ExpiresIn:       seconds(raw.ExpiresIn),
		Interval:        seconds(raw.Interval),
	}, nil
}

// ParseClaims reads the answer of GET /userinfo into its claims. It fails when the body is not a JSON
// object or lacks a string "sub".
func ParseClaims(body []byte) (map[string]any, error) {
	var claims map[string]any
	if err := json.Unmarshal(body, &claims); err != nil || claims == nil {
		return nil, ErrNotJSON
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, errors.New("answer lacks sub")
	}
	return claims, nil
}

// UserAuthorization is one entry of the answer of Helix's GET /authorization/users.
type UserAuthorization struct {
	UserID        string
	UserLogin     string
	UserName      string
	Scopes        []string
	HasAuthorized bool
}

// ParseUserAuthorizations reads the answer of Helix's GET /authorization/users:
// {"data":[{"user_id","user_name","user_login","scopes":[...],"has_authorized":true}, ...]}. It
// fails when the body is not a JSON object or lacks the data array; entries without a user_id
// are dropped. Scopes are read as scope fields are elsewhere (an array, a string, or null).
func ParseUserAuthorizations(body []byte) ([]UserAuthorization, error) {
	var raw struct {
		Data *[]struct {
			UserID        any             `json:"user_id"`
			UserLogin     any             `json:"user_login"`
			UserName      any             `json:"user_name"`
			Scopes        json.RawMessage `json:"scopes"`
			HasAuthorized any             `json:"has_authorized"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, ErrNotJSON
	}
	if raw.Data == nil {
		return nil, errors.New("answer lacks data")
	}
	out := make([]UserAuthorization, 0, len(*raw.Data))
	for _, d := range *raw.Data {
		id := asString(d.UserID)
		if id == "" {
			continue
		}
		authorized, _ := d.HasAuthorized.(bool)
		out = append(out, UserAuthorization{
			UserID:        id,
			UserLogin:     asString(d.UserLogin),
			UserName:      asString(d.UserName),
			Scopes:        scopeList(d.Scopes),
			HasAuthorized: authorized,
		})
	}
	return out, nil
}

// maxSeconds caps durations read from the wire (about 290 years), so that a hostile value cannot
// overflow a time.Duration.
const maxSeconds = 1 << 33

// seconds reads a JSON number of seconds (integer, float or numeric string); anything else, a
// negative number included, is 0.
func seconds(raw json.RawMessage) int64 {
	return max(signedSeconds(raw), 0)
}

// signedSeconds is seconds keeping the sign: a negative expires_in says the token is already
// expired, which is not the 0 of "never expires". Its magnitude is capped at maxSeconds.
func signedSeconds(raw json.RawMessage) int64 {
	s := strings.Trim(string(raw), `"`)
	var f float64
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return 0
	}
	return int64(min(max(f, -maxSeconds), maxSeconds))
}

// scopeList reads a scope field sent as a JSON array of strings, a space-separated string, or null.
func scopeList(raw json.RawMessage) []string {
	var list []string
	var s string
	switch {
	case json.Unmarshal(raw, &list) == nil:
	case json.Unmarshal(raw, &s) == nil:
		list = strings.Fields(s)
	default:
		list = nil // a failed decode may have filled part of it
		var mixed []any
		if json.Unmarshal(raw, &mixed) != nil {
			return nil
		}
		for _, m := range mixed {
			if str, ok := m.(string); ok {
				list = append(list, str)
			}
		}
	}
	var out []string
	for _, sc := range list {
		for _, f := range strings.Fields(sc) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
