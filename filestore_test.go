package twitchoauth_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// TestFileStoreSuite runs the suite every TokenStore passes; each replica is its own FileStore on
// the same path, as separate processes would be.
func TestFileStoreSuite(t *testing.T) {
	twitchoauthtest.TestTokenStore(t, func(t *testing.T) func(t *testing.T) twitchoauth.TokenStore {
		path := filepath.Join(t.TempDir(), "user_token.json")
		return func(*testing.T) twitchoauth.TokenStore { return &twitchoauth.FileStore{Path: path} }
	})
}

// TestFileStoreSealing runs the sealing suite on token files: a tampered file refused, a wrong
// key refused with one summary error and nothing overwritten, SaveIf against a stale pair refused,
// and a key rotated under concurrent refreshes, after which no issued token is in any file.
func TestFileStoreSealing(t *testing.T) {
	storetest.RunSealing(t, func(t *testing.T) storetest.SealedBackend {
		dir := t.TempDir()
		path := filepath.Join(dir, "user_token.json")
		return storetest.SealedBackend{
			Connect: func(t *testing.T, k *twitchoauth.Keyring) storetest.SealedStore {
				return &twitchoauth.FileStore{Path: path, Keyring: k}
			},
			Tamper: func(t *testing.T, key string) {
				file := filepath.Join(dir, "user_token."+key+".json")
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, storetest.TamperJSON(t, data), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			AtRest: func(t *testing.T) []string { return []string{dir} },
		}
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

// tempFiles returns the names in dir that look like a token file's temporary files.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestFileStoreRemovesLeftovers: the temporary file of a write that a crash cut short holds a
// token; the next write of that token file removes it, however young it is, and leaves alone
// what is not its own.
func TestFileStoreRemovesLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := &twitchoauth.FileStore{Path: filepath.Join(dir, "token.json")}
	secret := []byte(`{"token":"sekrit-access","refresh":"sekrit-refresh"}`)
	leftovers := []string{".token.json.tmp-123456", ".token.json.tmp-7"}
	// Another key's temporary file (key "json.tmp-1": token.json.tmp-1.json), and files of
	// other names, are not this file's leftovers.
	others := []string{".token.json.tmp-1.json.tmp-42", ".token.json.tmp-notdigits", ".token.12345.json.tmp-99"}
	for _, name := range append(slices.Clone(leftovers), others...) {
		if err := os.WriteFile(filepath.Join(dir, name), secret, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Save(t.Context(), "", &twitchoauth.StoredToken{AccessToken: "new", RefreshToken: "new-r"}); err != nil {
		t.Fatal(err)
	}
	got := tempFiles(t, dir)
	slices.Sort(got)
	slices.Sort(others)
	if !slices.Equal(got, others) {
		t.Errorf("temporary files after Save: %q, want only the others' %q", got, others)
	}
	if st, err := s.Load(t.Context(), ""); err != nil || st.AccessToken != "new" {
		t.Errorf("Load = %+v, %v", st, err)
	}
}

// TestFileStoreConcurrentWriters: writers of one token file, each a FileStore of its own as
// separate processes would be, never remove each other's temporary file while it is being
// written: every write succeeds.
func TestFileStoreConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token.json")
	const writers, writes = 8, 25
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		s := &twitchoauth.FileStore{Path: path}
		wg.Go(func() {
			for j := range writes {
				tok := &twitchoauth.StoredToken{AccessToken: fmt.Sprintf("acc-%d-%d", i, j), RefreshToken: "ref"}
				if err := s.Save(t.Context(), "", tok); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if st, err := (&twitchoauth.FileStore{Path: path}).Load(t.Context(), ""); err != nil || !strings.HasPrefix(st.AccessToken, "acc-") {
		t.Errorf("Load = %+v, %v", st, err)
	}
	if left := tempFiles(t, filepath.Dir(path)); len(left) > 0 {
		t.Errorf("left behind: %q", left)
	}
}

// TestFileStoreSaveIfUnreadable: SaveIf never replaces a token file it cannot read as a token, nor
// creates a missing one.
func TestFileStoreSaveIfUnreadable(t *testing.T) {
	next := &twitchoauth.StoredToken{AccessToken: "next", RefreshToken: "next-r"}
	prev := &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r"}
	for _, tc := range []struct{ name, content string }{
		{"garbage", "sekrit-garbage"},
		{"no token", `{"refresh":"r"}`},
		{"missing", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &twitchoauth.FileStore{Path: filepath.Join(t.TempDir(), "token.json")}
			if tc.content != "" {
				if err := os.WriteFile(s.Path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := s.SaveIf(t.Context(), "", prev, next)
			if !errors.Is(err, twitchoauth.ErrTokenChanged) {
				t.Errorf("SaveIf = %v, want ErrTokenChanged", err)
			}
			if err != nil && strings.Contains(err.Error(), "sekrit") {
				t.Errorf("error quotes the file: %v", err)
			}
			got, rerr := os.ReadFile(s.Path)
			if tc.content == "" && !errors.Is(rerr, os.ErrNotExist) {
				t.Errorf("SaveIf created the file: %s", got)
			}
			if tc.content != "" && string(got) != tc.content {
				t.Errorf("SaveIf changed the file: %s", got)
			}
		})
	}
}

// TestFileStoreNoLeftovers: a FileStore over a directory keeps one file per token at rest, and
// nothing once the token is deleted: the lock files go with their holders.
func TestFileStoreNoLeftovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tokens")
	store := twitchoauth.NewFileStore(dir)
	ctx := t.Context()
	st := &twitchoauth.StoredToken{AccessToken: "a", RefreshToken: "r", UserID: "1"}
	if err := store.Save(ctx, "1", st); err != nil {
		t.Fatal(err)
	}
	unlock, err := store.Lock(ctx, "1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SaveIf(ctx, "1", st, &twitchoauth.StoredToken{AccessToken: "b", RefreshToken: "r2", UserID: "1"}); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		entries, _ := os.ReadDir(dir)
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	if got := names(); len(got) != 1 || got[0] != "user_token.1.json" {
		t.Errorf("at rest the directory holds %q, want the token file alone", got)
	}
	unlock, err = store.Lock(ctx, "1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	unlock()
	if got := names(); len(got) != 0 {
		t.Errorf("after Delete the directory holds %q, want nothing", got)
	}
}

// TestFileStoreLockChurn: with lock files removed as their holders let go, the lock still
// excludes: many holders (each its own file descriptor, as processes have) taking and releasing
// one key's lock never overlap.
func TestFileStoreLockChurn(t *testing.T) {
	dir := t.TempDir()
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		store := twitchoauth.NewFileStore(dir)
		wg.Go(func() {
			for range 500 {
				unlock, err := store.Lock(t.Context(), "k", time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				runtime.Gosched()
				inside.Add(-1)
				unlock()
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d times two holders held the lock at once", n)
	}
}
