package wire

import (
	"reflect"
	"slices"
	"testing"
)

func TestParseToken(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Token
		wantErr bool
	}{
		{"twitch", `{"access_token":"a","expires_in":14124,"refresh_token":"r","scope":["chat:read","chat:edit"],"token_type":"bearer"}`,
			Token{AccessToken: "a", RefreshToken: "r", ExpiresIn: 14124, Scope: []string{"chat:read", "chat:edit"}, TokenType: "bearer"}, false},
		{"no scope", `{"access_token":"a","expires_in":5011271,"token_type":"bearer"}`,
			Token{AccessToken: "a", ExpiresIn: 5011271, TokenType: "bearer"}, false},
		{"twitch-cli empty scope", `{"access_token":"a","refresh_token":"","expires_in":86399,"scope":[""],"token_type":"bearer"}`,
			Token{AccessToken: "a", ExpiresIn: 86399, TokenType: "bearer"}, false},
		{"rfc string scope", `{"access_token":"a","scope":"chat:read  chat:edit"}`,
			Token{AccessToken: "a", Scope: []string{"chat:read", "chat:edit"}}, false},
		{"null scope", `{"access_token":"a","scope":null}`, Token{AccessToken: "a"}, false},
		{"mixed array", `{"access_token":"a","scope":["x",1,null,"y z"]}`, Token{AccessToken: "a", Scope: []string{"x", "y", "z"}}, false},
		{"float and string expiry", `{"access_token":"a","expires_in":"60"}`, Token{AccessToken: "a", ExpiresIn: 60}, false},
		{"negative expiry", `{"access_token":"a","expires_in":-5}`, Token{AccessToken: "a", ExpiresIn: -5}, false},
		{"huge negative expiry capped", `{"access_token":"a","expires_in":-1e300}`, Token{AccessToken: "a", ExpiresIn: -maxSeconds}, false},
		{"huge expiry capped", `{"access_token":"a","expires_in":1e300}`, Token{AccessToken: "a", ExpiresIn: maxSeconds}, false},
		{"no access token", `{"refresh_token":"r"}`, Token{}, true},
		{"html", `<html>502</html>`, Token{}, true},
		{"empty", ``, Token{}, true},
		{"array", `[]`, Token{}, true},
		{"truncated", `{"access_token":"a","expi`, Token{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseToken([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got.AccessToken != tt.want.AccessToken || got.RefreshToken != tt.want.RefreshToken ||
				got.ExpiresIn != tt.want.ExpiresIn || got.TokenType != tt.want.TokenType || !slices.Equal(got.Scope, tt.want.Scope) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		body   string
		want   ErrorBody
		wantOK bool
	}{
		{`{"error":"Bad Request","status":400,"message":"Invalid refresh token"}`, ErrorBody{Message: "Invalid refresh token", Error: "Bad Request"}, true},
		{`{"status":401,"message":"invalid access token"}`, ErrorBody{Message: "invalid access token"}, true},
		{`{"error":"invalid_grant","error_description":"bad code"}`, ErrorBody{Error: "invalid_grant", ErrorDescription: "bad code"}, true},
		{`{"status":"400","message":7}`, ErrorBody{}, false},
		{`{"status":1e99,"message":"m"}`, ErrorBody{Message: "m"}, true},
		{`<html>`, ErrorBody{}, false},
		{``, ErrorBody{}, false},
		{`null`, ErrorBody{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseError([]byte(tt.body))
		if ok != tt.wantOK || got != tt.want {
			t.Errorf("ParseError(%q) = %+v, %v; want %+v, %v", tt.body, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestParseValidation(t *testing.T) {
	v, err := ParseValidation([]byte(`{"client_id":"c","login":"l","scopes":["chat:read"],"user_id":"1","expires_in":3600}`))
	if err != nil || v.ClientID != "c" || v.Login != "l" || v.UserID != "1" || v.ExpiresIn != 3600 || !slices.Equal(v.Scopes, []string{"chat:read"}) {
		t.Errorf("user token: %+v, %v", v, err)
	}
	v, err = ParseValidation([]byte(`{"client_id":"c","login":null,"scopes":null,"user_id":null,"expires_in":0}`))
	if err != nil || v.Login != "" || v.UserID != "" || v.Scopes != nil || v.ExpiresIn != 0 {
		t.Errorf("app token: %+v, %v", v, err)
	}
	if _, err := ParseValidation([]byte(`{"login":"l"}`)); err == nil {
		t.Error("no client_id: want error")
	}
}

func TestParseDevice(t *testing.T) {
	d, err := ParseDevice([]byte(`{"device_code":"d","expires_in":1800,"interval":5,"user_code":"ABCDEFGH","verification_uri":"https://www.twitch.tv/activate?public=true&device-code=ABCDEFGH"}`))
	if err != nil || d.DeviceCode != "d" || d.UserCode != "ABCDEFGH" || d.Interval != 5 || d.ExpiresIn != 1800 {
		t.Errorf("%+v, %v", d, err)
	}
	for _, body := range []string{`{"user_code":"u","verification_uri":"v"}`, `{"device_code":"d","verification_uri":"v"}`, `{"device_code":"d","user_code":"u"}`, `x`} {
		if _, err := ParseDevice([]byte(body)); err == nil {
			t.Errorf("ParseDevice(%s): want error", body)
		}
	}
}

func TestParseClaims(t *testing.T) {
	c, err := ParseClaims([]byte(`{"sub":"1","preferred_username":"u"}`))
	if err != nil || c["sub"] != "1" {
		t.Errorf("%v, %v", c, err)
	}
	for _, body := range []string{`{"sub":1}`, `{}`, `null`, `[]`} {
		if _, err := ParseClaims([]byte(body)); err == nil {
			t.Errorf("ParseClaims(%s): want error", body)
		}
	}
}

func TestParseUserAuthorizations(t *testing.T) {
	got, err := ParseUserAuthorizations([]byte(`{"data":[
		{"user_id":"141981764","user_name":"TwitchDev","user_login":"twitchdev","scopes":["chat:read","bits:read"],"has_authorized":true},
		{"user_id":"2","user_name":"","user_login":"gone","scopes":[],"has_authorized":false},
		{"user_id":3,"has_authorized":true},
		{"user_id":"4","scopes":null,"has_authorized":"yes"}]}`))
	want := []UserAuthorization{
		{UserID: "141981764", UserLogin: "twitchdev", UserName: "TwitchDev", Scopes: []string{"chat:read", "bits:read"}, HasAuthorized: true},
		{UserID: "2", UserLogin: "gone"},
		{UserID: "4"}, // has_authorized that is not a JSON true says nothing was authorized
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseUserAuthorizations = %+v, %v; want %+v", got, err, want)
	}
	if got, err := ParseUserAuthorizations([]byte(`{"data":[]}`)); err != nil || len(got) != 0 {
		t.Errorf("an empty data: %v, %v; want none and no error", got, err)
	}
	for _, body := range []string{`{}`, `{"data":null}`, `{"data":{}}`, `null`, `[]`, `<html>`} {
		if _, err := ParseUserAuthorizations([]byte(body)); err == nil {
			t.Errorf("ParseUserAuthorizations(%s): want error", body)
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder: none may panic, and whatever one accepts holds
// what it promises.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"a","expires_in":14124,"refresh_token":"r","scope":["chat:read"],"token_type":"bearer"}`,
		`{"access_token":"a","scope":[""]}`,
		`{"access_token":"a","scope":"a b","expires_in":"1e3"}`,
		`{"error":"Bad Request","status":400,"message":"Invalid refresh token"}`,
		`{"client_id":"c","login":null,"scopes":null,"user_id":null,"expires_in":0}`,
		`{"device_code":"d","expires_in":1800,"interval":5,"user_code":"U","verification_uri":"v"}`,
		`{"sub":"1","email_verified":true}`,
		`{"data":[{"user_id":"1","user_login":"a","user_name":"A","scopes":["chat:read"],"has_authorized":true}]}`,
		`<html><body>502 Bad Gateway</body></html>`,
		``, `null`, `{`, `{"scope":[1,2,{}]}`, `{"status":-1,"message":""}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if tok, err := ParseToken(body); err == nil {
			if tok.AccessToken == "" || tok.ExpiresIn < 0 || slices.Contains(tok.Scope, "") {
				t.Errorf("ParseToken accepted %+v", tok)
			}
		}
		if e, ok := ParseError(body); ok && e.Message == "" && e.Error == "" && e.ErrorDescription == "" {
			t.Errorf("ParseError accepted an empty error")
		}
		if v, err := ParseValidation(body); err == nil && (v.ClientID == "" || v.ExpiresIn < 0 || slices.Contains(v.Scopes, "")) {
			t.Errorf("ParseValidation accepted %+v", v)
		}
		if d, err := ParseDevice(body); err == nil && (d.DeviceCode == "" || d.UserCode == "" || d.Interval < 0 || d.ExpiresIn < 0) {
			t.Errorf("ParseDevice accepted %+v", d)
		}
		if c, err := ParseClaims(body); err == nil && c["sub"] == "" {
			t.Errorf("ParseClaims accepted %v", c)
		}
		if as, err := ParseUserAuthorizations(body); err == nil {
			for _, a := range as {
				if a.UserID == "" || slices.Contains(a.Scopes, "") {
					t.Errorf("ParseUserAuthorizations accepted %+v", a)
				}
			}
		}
	})
}
