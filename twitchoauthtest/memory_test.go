package twitchoauthtest_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// TestInMemoryMovesBothClocks: inside a synctest bubble, 5 hours of sleep age the token on both
// sides: the code under test sees it expired and refreshes it, where Advance alone would leave it
// holding a token it believes fresh that /validate refuses.
func TestInMemoryMovesBothClocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := twitchoauthtest.NewInMemory(t)
		c := srv.Client()
		tok := srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
		src := twitchoauth.NewUserTokenSource(c, tok, nil)
		time.Sleep(5 * time.Hour)
		got, err := src.Token()
		if err != nil || got.AccessToken == tok.AccessToken {
			t.Fatalf("after 5 hours: %v, %v; want a refreshed token", got, err)
		}
		if n := len(srv.Requests("token")); n != 1 {
			t.Errorf("%d refreshes, want 1", n)
		}
		if v, err := src.Validate(t.Context()); err != nil || v.UserID != twitchoauthtest.UserID {
			t.Errorf("Validate = %+v, %v", v, err)
		}
	})
}

// TestInMemoryFaults: the in-process transport carries the Server's faults, a lost answer
// included.
func TestInMemoryFaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := twitchoauthtest.NewInMemory(t)
		c := srv.PublicClient()
		tok := srv.IssueUserToken(twitchoauthtest.UserID)
		srv.Fail("validate", 503, 1)
		if _, err := c.ValidateToken(t.Context(), tok.AccessToken); err == nil {
			t.Error("validate during the outage: no error")
		}
		srv.Lose("validate", 1)
		if _, err := c.ValidateToken(t.Context(), tok.AccessToken); err == nil {
			t.Error("validate whose answer was lost: no error")
		}
		srv.RateLimit("validate", 30*time.Second, 1)
		var ae *twitchoauth.APIError
		if _, err := c.ValidateToken(t.Context(), tok.AccessToken); !errors.As(err, &ae) || ae.RetryAfter != 30*time.Second {
			t.Errorf("rate limited: %v, want a 429 asking for 30 s", err)
		}
		srv.Hang("validate", 1)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if _, err := c.ValidateToken(ctx, tok.AccessToken); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("hanging validate: %v, want the deadline", err)
		}
	})
}

// TestAuthenticatorOnFreePorts: the kit's authenticators listen on free ports, so login tests run
// in parallel.
func TestAuthenticatorOnFreePorts(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	for i := range 4 {
		t.Run(string(rune('a'+i)), func(t *testing.T) {
			t.Parallel()
			tok, err := srv.Authenticator(twitchoauth.ScopeChatRead).Authenticate(t.Context())
			if err != nil || tok.AccessToken == "" {
				t.Errorf("Authenticate = %v, %v", tok, err)
			}
		})
	}
}

// TestStorageHelperKit: the kit's storage helper logs in through the fake and keeps the token.
func TestStorageHelperKit(t *testing.T) {
	srv := twitchoauthtest.NewServer(t)
	path := filepath.Join(t.TempDir(), "tok.json")
	src, v, err := srv.StorageHelper(path, twitchoauth.ScopeChatRead).BindValidation(t.Context())
	if err != nil || v.UserID != twitchoauthtest.UserID {
		t.Fatalf("BindValidation = %+v, %v", v, err)
	}
	if _, err := src.Token(); err != nil {
		t.Error(err)
	}
	if _, err := twitchoauth.NewFileStore(filepath.Dir(path)).Load(t.Context(), ""); err == nil {
		t.Log("(the token file is the helper's own path)")
	}
}
