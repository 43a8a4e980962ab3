package twitchoauthtest_test

// The test README.md shows under "Testing your bot", kept here so that it compiles and passes.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// whoami is the bot's code: whose channel does its token speak for?
func whoami(ctx context.Context, src *twitchoauth.UserTokenSource) (string, error) {
	v, err := src.Validate(ctx) // refreshes a token that expired, or that Twitch ended
	if err != nil {
		return "", err
	}
	return v.Login, nil
}

func TestWhoami(t *testing.T) {
	srv := twitchoauthtest.NewServer(t) // closed when the test ends
	srv.AddUser("1234", "streamer")
	tok := srv.IssueUserToken("1234", twitchoauth.ScopeChatRead)
	tok.Expiry = time.Now().Add(-time.Minute) // the bot slept through the token's 4 hours
	src := twitchoauth.NewUserTokenSource(srv.Client(), tok, nil)

	if login, err := whoami(t.Context(), src); login != "streamer" || err != nil {
		t.Fatalf("whoami = %q, %v; want streamer", login, err)
	}
	if n := len(srv.Requests("token")); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	srv.Revoke(tok.AccessToken) // the streamer disconnects the bot
	if _, err := whoami(t.Context(), src); !errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		t.Errorf("after the revoke: %v, want ErrInvalidRefreshToken: the streamer must connect the bot again", err)
	}
}

// TestReadmeShowsWhoami checks that README.md shows whoami and TestWhoami as this file has them.
func TestReadmeShowsWhoami(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	start := bytes.Index(src, []byte("// whoami is"))
	end := bytes.Index(src, []byte("// TestReadmeShowsWhoami"))
	if start < 0 || end < start {
		t.Fatal("cannot find whoami and TestWhoami in readme_test.go")
	}
	if shown := bytes.TrimSpace(src[start:end]); !bytes.Contains(readme, shown) {
		t.Errorf("README.md does not show this code as it is here:\n%s", shown)
	}
}
