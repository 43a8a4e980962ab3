package twitchoauth_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestFileStoreRecordLimit: a token file of twitchoauth.MaxStoredTokenSize bytes is written and
// read back; a larger one is refused by Save and SaveIf, and nothing is written.
func TestFileStoreRecordLimit(t *testing.T) {
	s := twitchoauth.NewFileStore(t.TempDir())
	storetest.WantRecordLimit(t, t.Context(), s, func(st *twitchoauth.StoredToken) ([]byte, error) {
		data, err := json.MarshalIndent(st, "", "  ")
		return append(data, '\n'), err
	})
}

func TestQuoteKey(t *testing.T) {
	k64 := strings.Repeat("k", 64)
	for _, tc := range []struct{ name, key, want string }{
		{"empty", "", `""`},
		{"short", "12345", `"12345"`},
		{"64 bytes, whole", k64, `"` + k64 + `"`},
		{"65 bytes", k64 + "k", `"` + k64[:32] + `"… (65 bytes)`},
		{"quoted", "a\"b\n", `"a\"b\n"`},
		{"a rune across the cut", strings.Repeat("a", 31) + "é" + k64, `"` + strings.Repeat("a", 31) + `"… (97 bytes)`},
		{"a rune ending at the cut", strings.Repeat("a", 28) + "😀" + k64, `"` + strings.Repeat("a", 28) + `😀"… (96 bytes)`},
		{"a rune of 4 bytes across the cut", strings.Repeat("a", 29) + "😀" + k64, `"` + strings.Repeat("a", 29) + `"… (97 bytes)`},
		{"not UTF-8", strings.Repeat("\x80", 70), `"` + strings.Repeat(`\x80`, 29) + `"… (70 bytes)`},
		{"1 MiB", storetest.LongKey, `"` + storetest.LongKey[:32] + `"… (1048576 bytes)`},
	} {
		if got := twitchoauth.QuoteKey(tc.key); got != tc.want {
			t.Errorf("%s: QuoteKey = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestFileStoreLongKeyErrors: a key too long to name a file is refused by every operation with an
// error that quotes a short prefix of it; the longest key that names a file works, lock and
// temporary files too.
func TestFileStoreLongKeyErrors(t *testing.T) {
	s := twitchoauth.NewFileStore(t.TempDir())
	ctx := t.Context()
	prev, next := &twitchoauth.StoredToken{AccessToken: "a"}, &twitchoauth.StoredToken{AccessToken: "b"}
	for _, key := range []string{storetest.LongKey, "a/" + storetest.LongKey, strings.Repeat("k", 224)} {
		_, err := s.Load(ctx, key)
		storetest.WantShortError(t, "Load", err)
		storetest.WantShortError(t, "Save", s.Save(ctx, key, prev))
		storetest.WantShortError(t, "SaveIf", s.SaveIf(ctx, key, prev, next))
		_, err = s.Lock(ctx, key, time.Minute)
		storetest.WantShortError(t, "Lock", err)
		_, err = s.LockLease(ctx, key, time.Minute)
		storetest.WantShortError(t, "LockLease", err)
		storetest.WantShortError(t, "Delete", s.Delete(ctx, key))
	}

	// "user_token." and ".json" around it: a name of 239 bytes.
	longest := strings.Repeat("k", 223)
	unlock, err := s.Lock(ctx, longest, time.Minute)
	if err != nil {
		t.Fatalf("Lock of a key of %d bytes: %v", len(longest), err)
	}
	defer unlock()
	if err := s.Save(ctx, longest, prev); err != nil {
		t.Fatalf("Save of a key of %d bytes: %v", len(longest), err)
	}
	if err := s.SaveIf(ctx, longest, prev, next); err != nil {
		t.Fatalf("SaveIf of a key of %d bytes: %v", len(longest), err)
	}
	if st, err := s.Load(ctx, longest); err != nil || st.AccessToken != "b" {
		t.Errorf("Load of a key of %d bytes: %v", len(longest), err)
	}
	if keys, err := s.Keys(ctx); err != nil || !slices.Equal(keys, []string{longest}) {
		t.Errorf("Keys = %d keys, %v; want the key of %d bytes", len(keys), err, len(longest))
	}
}

// TestRegistryLongKeyErrors: the registry quotes a short prefix of a long user ID in its errors,
// as the stores do.
func TestRegistryLongKeyErrors(t *testing.T) {
	u := twitchoauth.NewUserTokens(twitchoauth.NewClient("id", ""), twitchoauth.NewFileStore(t.TempDir()))
	_, err := u.Source(storetest.LongKey)
	storetest.WantShortError(t, "Source", err)
	storetest.WantShortError(t, "Remove", u.Remove(t.Context(), storetest.LongKey, false))
}
