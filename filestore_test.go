package twitchoauth_test

import (
	"path/filepath"
	"testing"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestFileStoreSuite runs the suite every TokenStore passes; each replica is its own FileStore on
// the same path, as separate processes would be.
func TestFileStoreSuite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func(t *testing.T) twitchoauth.TokenStore {
		path := filepath.Join(t.TempDir(), "user_token.json")
		return func(*testing.T) twitchoauth.TokenStore { return &twitchoauth.FileStore{Path: path} }
	})
}
