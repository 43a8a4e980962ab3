package twitchoauthtest

import (
	"context"
	"testing"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// Authenticator returns a [twitchoauth.UserAuthenticator] of the Server's confidential app for
// scopes, ready for a test: its redirect server listens on a free loopback port (Port 0, URL ""),
// so tests under t.Parallel never collide on [twitchoauth.DefaultPort], and the Server plays the
// browser ([Server.OpenBrowser]).
func (s *Server) Authenticator(scopes ...twitchoauth.Scope) *twitchoauth.UserAuthenticator {
	return s.authenticator(s.Client(), scopes)
}

func (s *Server) authenticator(c *twitchoauth.Client, scopes []twitchoauth.Scope) *twitchoauth.UserAuthenticator {
	a := twitchoauth.NewUserAuthenticator(c, scopes)
	a.URL, a.Port = "", 0
	a.OpenBrowser = s.OpenBrowser
	return a
}

// StorageHelper returns a [twitchoauth.UserAuthenticationStorageHelper] of the Server's
// confidential app for scopes, keeping its token in the file at path, whose logins run as
// [Server.Authenticator]'s do: on a free port, the Server playing the browser.
func (s *Server) StorageHelper(path string, scopes ...twitchoauth.Scope) *twitchoauth.UserAuthenticationStorageHelper {
	h := twitchoauth.NewUserAuthenticationStorageHelper(s.Client(), scopes)
	h.StoragePath = path
	h.AuthGenerator = func(ctx context.Context, c *twitchoauth.Client, scopes []twitchoauth.Scope) (*oauth2.Token, error) {
		a := s.authenticator(c, scopes)
		a.ForceVerify = true
		return a.Authenticate(ctx)
	}
	return h
}

// StoreOpener sets up an empty store for one test and returns how to connect to it: each call of
// connect is a new client, as another replica (or process) would have, all of them seeing the
// same data. For a store without clients of its own, connect may return the same value each time
// (see [SharedStore]).
type StoreOpener func(t *testing.T) (connect func(t *testing.T) twitchoauth.TokenStore)

// SharedStore is the StoreOpener of a store that replicas share as one value: newStore returns an
// empty store for a test, and every replica of that test uses it.
func SharedStore(newStore func(t *testing.T) twitchoauth.TokenStore) StoreOpener {
	return func(t *testing.T) func(t *testing.T) twitchoauth.TokenStore {
		store := newStore(t)
		return func(*testing.T) twitchoauth.TokenStore { return store }
	}
}

// TestTokenStore runs the suite every [twitchoauth.TokenStore] must pass, as a test of the store
// open gives, against this package's fake Twitch: storage, keys, locks with a lease, and the
// refresh discipline of replicas that share a login (one refresh between them, a slow refresh
// that renews its lease, a late lock reply, a replica whose lease lapsed fenced off, the
// write-ahead mark of a public client's refresh, and a refreshed pair the store failed to take).
// The cases of the optional interfaces ([twitchoauth.LeaseLocker],
// [twitchoauth.ConditionalSaver], [twitchoauth.KeyLister]) run when the store implements them:
// a store shared by replicas should implement all three. The file store and the Redis store run
// it:
//
//	func TestStore(t *testing.T) {
//		twitchoauthtest.TestTokenStore(t, func(t *testing.T) func(t *testing.T) twitchoauth.TokenStore {
//			prefix := "test:" + t.Name() + ":" // each case sees only its own data
//			return func(t *testing.T) twitchoauth.TokenStore {
//				return &redisstore.Store{Client: newClient(t), Prefix: prefix}
//			}
//		})
//	}
func TestTokenStore(t *testing.T, open StoreOpener) {
	storetest.Run(t, storetest.Open(open))
}
