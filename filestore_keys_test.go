package twitchoauth

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestFileStoreListKeys: Keys lists the token files beside Path and nothing else there: not Path itself
// (key ""), lock files, temporary files, other files or directories.
func TestFileStoreListKeys(t *testing.T) {
	for _, tc := range []struct{ name, base string }{
		{"with extension", "user_token.json"},
		{"without extension", "tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := &FileStore{Path: filepath.Join(dir, tc.base)}
			ctx := t.Context()
			for _, k := range []string{"", "42", "7"} {
				if err := s.Save(ctx, k, &StoredToken{AccessToken: "a"}); err != nil {
					t.Fatal(err)
				}
			}
			unlock, err := s.Lock(ctx, "42", 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unlock()
			ext := filepath.Ext(tc.base)
			stem := tc.base[:len(tc.base)-len(ext)]
			for _, name := range []string{"." + tc.base + ".tmp-123", "." + stem + ".9" + ext + ".tmp-1", "other.json", stem + "." + ext} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(filepath.Join(dir, stem+".dir"+ext), 0o700); err != nil {
				t.Fatal(err)
			}
			keys, err := s.Keys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, []string{"42", "7"}) {
				t.Errorf("Keys = %q, want [42 7]", keys)
			}
		})
	}
	t.Run("missing directory", func(t *testing.T) {
		s := &FileStore{Path: filepath.Join(t.TempDir(), "none", "user_token.json")}
		if keys, err := s.Keys(t.Context()); err != nil || len(keys) != 0 {
			t.Errorf("Keys = %q, %v; want none", keys, err)
		}
	})
}
