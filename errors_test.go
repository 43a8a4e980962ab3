package twitchoauth

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCheckResponse(t *testing.T) {
	big := strings.Repeat("x", maxBodySize+1)
	tests := []struct {
		name     string
		endpoint string
		status   int
		body     string
		readErr  error
		want     []error // sentinels the error must match
		notWant  []error
		message  string
	}{
		{"refresh rejected", "token", 400, `{"error":"Bad Request","status":400,"message":"Invalid refresh token"}`, nil,
			[]error{ErrInvalidRefreshToken}, []error{ErrUnauthorized, ErrInvalidToken}, "Invalid refresh token"},
		{"wrong secret", "token", 403, `{"status":403,"message":"invalid client secret"}`, nil,
			[]error{ErrUnauthorized}, []error{ErrInvalidRefreshToken}, "invalid client secret"},
		{"token 401", "token", 401, `{"status":401,"message":"invalid client"}`, nil, []error{ErrUnauthorized}, nil, "invalid client"},
		{"missing secret", "token", 400, `{"status":400,"message":"missing client secret"}`, nil,
			nil, []error{ErrInvalidRefreshToken, ErrUnauthorized, ErrUnknownClient}, "missing client secret"},
		{"validate 401", "validate", 401, `{"status":401,"message":"invalid access token"}`, nil, []error{ErrInvalidToken}, []error{ErrUnauthorized}, "invalid access token"},
		{"userinfo 401", "userinfo", 401, `{"error":"Unauthorized","status":401,"message":"invalid access token"}`, nil, []error{ErrInvalidToken}, nil, "invalid access token"},
		{"revoke invalid", "revoke", 400, `{"status":400,"message":"Invalid token"}`, nil, []error{ErrInvalidToken}, nil, "Invalid token"},
		{"revoke unknown client", "revoke", 404, `{"status":404,"message":"client does not exist"}`, nil, []error{ErrUnknownClient}, []error{ErrInvalidToken}, "client does not exist"},
		{"token unknown client", "token", 400, `{"status":400,"message":"invalid client"}`, nil, []error{ErrUnknownClient}, []error{ErrUnauthorized, ErrInvalidRefreshToken}, "invalid client"},
		{"device unknown client", "device", 400, `{"status":400,"message":"invalid client"}`, nil, []error{ErrUnknownClient}, nil, "invalid client"},
		{"device pending", "token", 400, `{"status":400,"message":"authorization_pending"}`, nil, nil, []error{ErrAccessDenied, ErrDeviceCodeExpired}, "authorization_pending"},
		{"device denied in message", "token", 400, `{"status":400,"message":"access_denied"}`, nil, []error{ErrAccessDenied}, nil, "access_denied"},
		{"device denied in error", "token", 400, `{"status":400,"error":"access_denied","message":"user denied"}`, nil, []error{ErrAccessDenied}, nil, "user denied"},
		{"device expired", "token", 400, `{"status":400,"message":"invalid device code"}`, nil, []error{ErrDeviceCodeExpired}, nil, "invalid device code"},
		{"rfc error", "token", 400, `{"error":"invalid_grant","error_description":"bad"}`, nil, nil, nil, "bad"},
		{"empty 500", "validate", 500, ``, nil, nil, []error{ErrInvalidToken}, "Internal Server Error"},
		{"html 502", "token", 502, `<html><body>Bad Gateway</body></html>`, nil, nil, nil, "Bad Gateway (answer is not Twitch's JSON error)"},
		{"oversized", "token", 200, big, nil, nil, nil, "answer larger than 1 MiB"},
		{"truncated", "validate", 200, `{"client_`, io.ErrUnexpectedEOF, []error{io.ErrUnexpectedEOF}, nil, "answer cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkResponse(tt.endpoint, tt.status, []byte(tt.body), tt.readErr, nil)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *APIError", err)
			}
			if ae.Endpoint != tt.endpoint || ae.StatusCode != tt.status || ae.Message != tt.message {
				t.Errorf("got %+v, want endpoint %s status %d message %q", ae, tt.endpoint, tt.status, tt.message)
			}
			for _, s := range tt.want {
				if !errors.Is(err, s) {
					t.Errorf("errors.Is(%v, %v) = false", err, s)
				}
			}
			for _, s := range tt.notWant {
				if errors.Is(err, s) {
					t.Errorf("errors.Is(%v, %v) = true", err, s)
				}
			}
		})
	}
	if body, err := checkResponse("revoke", 200, nil, nil, nil); err != nil || body != nil {
		t.Errorf("empty 200 = %q, %v; want success", body, err)
	}
}

func TestAPIErrorScrubsSecrets(t *testing.T) {
	const secret = "s3cr3t-refresh-token"
	body := `{"status":400,"message":"Invalid refresh token ` + secret + "\n\x1b[31m" + `","error":"` + secret + `"}`
	_, err := checkResponse("token", 400, []byte(body), nil, []string{"", secret})
	if strings.Contains(err.Error(), secret) || strings.ContainsAny(err.Error(), "\n\x1b") {
		t.Errorf("error leaks: %q", err)
	}
	long := `{"status":500,"message":"` + strings.Repeat("é", 500) + `"}`
	_, err = checkResponse("token", 500, []byte(long), nil, nil)
	var ae *APIError
	if !errors.As(err, &ae) || len(ae.Message) > maxMessageLen+len("…") {
		t.Errorf("message not capped: %d bytes", len(ae.Message))
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		err  *APIError
		want string
	}{
		{&APIError{Endpoint: "token", StatusCode: 400, Message: "Invalid refresh token", ErrorCode: "Bad Request"},
			"twitchoauth: token answered 400: Invalid refresh token"},
		{&APIError{Endpoint: "authorize", Message: "The user denied you access", ErrorCode: "access_denied"},
			"twitchoauth: authorize: access_denied: The user denied you access"},
		{&APIError{Endpoint: "validate", StatusCode: 200, Message: "answer cut short", cause: io.ErrUnexpectedEOF},
			"twitchoauth: validate answered 200: answer cut short: unexpected EOF"},
		// What the app's own set-up got wrong says what to check.
		{&APIError{Endpoint: "device", StatusCode: 400, Message: "invalid client", ErrorCode: "Bad Request"},
			"twitchoauth: device answered 400: invalid client (Twitch does not know this client ID: check " +
				"Client.ClientID against the app's Client ID in the Twitch developer console)"},
		{&APIError{Endpoint: "authorize", StatusCode: 400, Message: "invalid client"},
			"twitchoauth: authorize answered 400: invalid client (Twitch does not know this client ID: check " +
				"Client.ClientID against the app's Client ID in the Twitch developer console)"},
		{&APIError{Endpoint: "revoke", StatusCode: 404, Message: "client does not exist"},
			"twitchoauth: revoke answered 404: client does not exist (Twitch does not know this client ID: check " +
				"Client.ClientID against the app's Client ID in the Twitch developer console)"},
		{&APIError{Endpoint: "token", StatusCode: 400, Message: "invalid client"},
			"twitchoauth: token answered 400: invalid client (Twitch does not know this client ID: check " +
				"Client.ClientID against the app's Client ID in the Twitch developer console; an app registered " +
				"as Public, without a secret, gets this answer too from a grant that needs a secret)"},
		{&APIError{Endpoint: "token", StatusCode: 400, Message: "missing client secret"},
			"twitchoauth: token answered 400: missing client secret (the app is Confidential: set " +
				"Client.ClientSecret to its secret from the Twitch developer console)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestMissingScopeError(t *testing.T) {
	var err error = &MissingScopeError{Missing: []Scope{ScopeChatEdit, ScopeChannelBot}}
	if !errors.Is(err, ErrMissingScope) {
		t.Error("not ErrMissingScope")
	}
	if want := "twitchoauth: token lacks scopes: chat:edit, channel:bot"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
}

func TestIsTransient(t *testing.T) {
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{ctx, &APIError{Endpoint: "token", StatusCode: 503}, true},
		{ctx, &APIError{Endpoint: "token", StatusCode: 429}, true},
		{ctx, &APIError{Endpoint: "token", StatusCode: 200, cause: io.ErrUnexpectedEOF}, true},
		{ctx, &APIError{Endpoint: "token", StatusCode: 400, Message: "Invalid refresh token"}, false},
		{ctx, errors.New("dial tcp: connection refused"), true},
		{ctx, &APIError{Endpoint: "token", Message: "cannot build request: bad AuthBaseURL", cause: errors.New("missing ']' in host")}, false},
		{cancelled, errors.New("dial tcp: connection refused"), false},
		{ctx, nil, false},
	}
	for i, tt := range tests {
		if got := isTransient(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%d: isTransient(%v) = %v, want %v", i, tt.err, got, tt.want)
		}
	}
}
