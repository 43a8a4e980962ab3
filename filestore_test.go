package twitchoauth_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
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

// TestFileStoreLoadTightensMode: a token file others can read (pyTwitchAPI writes it with the
// default mode, often 0644) is made private as soon as it is loaded, not at the next write.
func TestFileStoreLoadTightensMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no such mode bits")
	}
	for _, tc := range []struct{ mode, want os.FileMode }{
		{0o644, 0o600}, {0o640, 0o600}, {0o604, 0o600}, {0o666, 0o600}, {0o600, 0o600}, {0o400, 0o400},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "user_token.json")
			data := []byte(`{"token":"acc","refresh":"ref"}`)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			st, err := (&twitchoauth.FileStore{Path: path}).Load(t.Context(), "")
			if err != nil || st.AccessToken != "acc" {
				t.Fatalf("Load = %+v, %v", st, err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tc.want {
				t.Errorf("mode after Load = %v, want %v", got, tc.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
				t.Errorf("Load changed the file: %s", after)
			}
		})
	}
}
