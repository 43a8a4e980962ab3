package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

// The sealing suite: what every store that takes a Keyring must do with it, on the real store.

// SealedStore is a store for replicas that seals with a Keyring and can seal its records again.
type SealedStore interface {
	SharedStore
	Reseal(ctx context.Context) (int, error)
}

// SealedBackend is one test's backing store, empty at first.
type SealedBackend struct {
	// Connect returns a new client (a replica) of the store with Keyring k (nil: none).
	Connect func(t *testing.T, k *twitchoauth.Keyring) SealedStore
	// Tamper changes one byte of the sealed value of key's record where the store keeps it, and
	// nothing else.
	Tamper func(t *testing.T, key string)
	// AtRest writes out whatever the store holds in memory only (Redis: BGREWRITEAOF and SAVE)
	// and returns every file the store keeps its data in (a directory: each file under it).
	AtRest func(t *testing.T) []string
}

// SealOpen sets up an empty backing store for one test.
type SealOpen func(t *testing.T) SealedBackend

// RunSealing runs the sealing suite.
func RunSealing(t *testing.T, open SealOpen) {
	t.Run("Tampered", func(t *testing.T) { testSealTampered(t, open) })
	t.Run("WrongKey", func(t *testing.T) { testSealWrongKey(t, open) })
	t.Run("StaleSaveIf", func(t *testing.T) { testSealStaleSaveIf(t, open) })
	t.Run("RotationUnderRefreshes", func(t *testing.T) { testSealRotation(t, open) })
}

// TestKey derives a test key from its ID.
func TestKey(id string) []byte {
	k := sha256.Sum256([]byte("storetest key " + id))
	return k[:]
}

// TestKeyring returns a Keyring that seals with current and opens the keys of ids.
func TestKeyring(t testing.TB, current string, ids ...string) *twitchoauth.Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		keys[id] = TestKey(id)
	}
	k, err := twitchoauth.NewKeyring(current, keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// wantCannotUnseal checks that err says the record could not be opened, and nothing else.
func wantCannotUnseal(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, twitchoauth.ErrCannotUnseal) || errors.Is(err, twitchoauth.ErrTokenCorrupt) ||
		errors.Is(err, twitchoauth.ErrTokenNotFound) || errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("%s: %v; want ErrCannotUnseal alone", what, err)
	}
}

// testSealTampered: a record whose sealed value was altered at rest is refused, as
// ErrCannotUnseal, by Load, SaveIf and Reseal, which write nothing over it; the other records
// read as before.
func testSealTampered(t *testing.T, open SealOpen) {
	b := open(t)
	ctx := t.Context()
	s := b.Connect(t, TestKeyring(t, "k1", "k1"))
	tok := func(id string) *twitchoauth.StoredToken {
		return &twitchoauth.StoredToken{AccessToken: "access-" + id, RefreshToken: "refresh-" + id, UserID: id,
			Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	}
	for _, id := range []string{"1", "2"} {
		if err := s.Save(ctx, id, tok(id)); err != nil {
			t.Fatal(err)
		}
	}
	b.Tamper(t, "1")
	_, err := s.Load(ctx, "1")
	wantCannotUnseal(t, "Load of a tampered record", err)
	if err != nil && strings.Contains(err.Error(), "access-1") {
		t.Errorf("the error shows the token: %v", err)
	}
	wantCannotUnseal(t, "SaveIf over a tampered record", s.SaveIf(ctx, "1", tok("1"), tok("9")))
	// Reseal with the key that sealed it: nothing to write (it may not even open it).
	if n, err := s.Reseal(ctx); n != 0 || (err != nil && !errors.Is(err, twitchoauth.ErrCannotUnseal)) {
		t.Errorf("Reseal with the same key over a tampered record: %d, %v; want nothing written", n, err)
	}
	rotated := b.Connect(t, TestKeyring(t, "k2", "k1", "k2"))
	n, err := rotated.Reseal(ctx)
	wantCannotUnseal(t, "Reseal with a new key over a tampered record", err)
	if n != 1 {
		t.Errorf("Reseal with a new key wrote %d records, want the untouched one", n)
	}
	_, err = rotated.Load(ctx, "1")
	wantCannotUnseal(t, "Load of the tampered record after SaveIf and Reseal", err) // nil: overwritten
	if got, err := rotated.Load(ctx, "2"); err != nil || got.AccessToken != "access-2" || got.RefreshToken != "refresh-2" {
		t.Errorf("the untouched record: %+v, %v", got, err)
	}
}

// WrongKeyUsers is how many users the wrong-key test stores.
const WrongKeyUsers = 1000

// testSealWrongKey: records sealed with a key the Keyring lacks, or read without a Keyring, are
// refused with ErrCannotUnseal: Load names the key IDs; a registry's Sync and a Reseal over all of
// them return one short line that counts them, names the key IDs found and held, and says to
// check the Keyring; the storage helper runs no login; and nothing is deleted or overwritten.
func testSealWrongKey(t *testing.T, open SealOpen) {
	b := open(t)
	ctx := t.Context()
	c, fake := Twitch(t)
	old := b.Connect(t, TestKeyring(t, "k-old", "k-old"))
	ids := UserIDs(1, WrongKeyUsers)
	want := map[string]*twitchoauth.StoredToken{}
	for _, id := range ids {
		st := &twitchoauth.StoredToken{AccessToken: "access-" + id, RefreshToken: "refresh-" + id, UserID: id,
			ClientID: c.ClientID, Scopes: Scopes, Expiry: time.Now().Add(time.Hour).Round(0)}
		want[id] = st
		if err := old.Save(ctx, id, st); err != nil {
			t.Fatal(err)
		}
	}
	wrong := b.Connect(t, TestKeyring(t, "k-new", "k-new"))
	_, err := wrong.Load(ctx, "1")
	wantCannotUnseal(t, "Load with the wrong key", err)
	if err == nil || !strings.Contains(err.Error(), `"k-old"`) || !strings.Contains(err.Error(), `"k-new"`) {
		t.Errorf("Load with the wrong key: %v; want the key IDs found and held", err)
	}
	_, err = b.Connect(t, nil).Load(ctx, "1")
	wantCannotUnseal(t, "Load without a Keyring", err)

	summary := func(what string, err error) {
		t.Helper()
		wantCannotUnseal(t, what, err)
		if err == nil {
			return
		}
		msg := err.Error()
		t.Logf("%s: %s", what, msg)
		if strings.Contains(msg, "\n") || len(msg) > 300 {
			t.Errorf("%s: an error of %d bytes, %d lines; want one short line", what, len(msg), strings.Count(msg, "\n")+1)
		}
		for _, part := range []string{fmt.Sprintf("%d stored tokens", WrongKeyUsers), `"k-old"`, `"k-new"`, "check the Keyring"} {
			if !strings.Contains(msg, part) {
				t.Errorf("%s: %.300s; want it to say %s", what, msg, part)
			}
		}
		var ue *twitchoauth.UnsealError
		if !errors.As(err, &ue) || ue.Count != WrongKeyUsers {
			t.Errorf("%s: want an UnsealError counting %d records", what, WrongKeyUsers)
		}
	}
	u := twitchoauth.NewUserTokens(c, wrong)
	summary("Sync with the wrong key", u.Sync(ctx))
	if n := len(u.Users()); n != 0 {
		t.Errorf("Sync with the wrong key registered %d users", n)
	}
	n, err := wrong.Reseal(ctx)
	summary("Reseal with the wrong key", err)
	if n != 0 {
		t.Errorf("Reseal with the wrong key wrote %d records", n)
	}

	h := twitchoauth.NewUserAuthenticationStorageHelper(c, Scopes)
	h.Store, h.StoreKey = wrong, "1"
	h.AuthGenerator = func(context.Context, *twitchoauth.Client, []twitchoauth.Scope) (*oauth2.Token, error) {
		t.Error("the storage helper ran a login over a record it could not open")
		return nil, errors.New("no login")
	}
	_, err = h.Bind(ctx)
	wantCannotUnseal(t, "Bind with the wrong key", err)

	keys, err := old.Keys(ctx)
	if err != nil || len(keys) != len(ids) {
		t.Errorf("Keys after the wrong key: %d keys, %v; want %d", len(keys), err, len(ids))
	}
	for _, id := range ids {
		got, err := old.Load(ctx, id)
		if err != nil || got.AccessToken != want[id].AccessToken || got.RefreshToken != want[id].RefreshToken {
			t.Fatalf("user %s after the wrong key: %+v, %v; want it as it was stored", id, got, err)
		}
	}
	if n := fake.CountRequests("token"); n != 0 {
		t.Errorf("%d requests to the token endpoint", n)
	}
}

// testSealStaleSaveIf: on a sealed store, where a record's clear fields hold an empty pair, SaveIf
// compares the opened pair: a prev that is not the stored pair, or a mark that is not the stored
// one, stores nothing; two different sealed records never compare equal.
func testSealStaleSaveIf(t *testing.T, open SealOpen) {
	b := open(t)
	ctx := t.Context()
	a, other := b.Connect(t, TestKeyring(t, "k1", "k1")), b.Connect(t, TestKeyring(t, "k1", "k1"))
	v1 := &twitchoauth.StoredToken{AccessToken: "a1", RefreshToken: "r1", UserID: "7"}
	v2 := &twitchoauth.StoredToken{AccessToken: "a2", RefreshToken: "r2", UserID: "7"}
	v3 := &twitchoauth.StoredToken{AccessToken: "a3", RefreshToken: "r3", UserID: "7"}
	if err := a.Save(ctx, "7", v1); err != nil {
		t.Fatal(err)
	}
	if err := other.SaveIf(ctx, "7", v1, v2); err != nil {
		t.Fatalf("SaveIf over the pair it read: %v", err)
	}
	if err := a.SaveIf(ctx, "7", v1, v3); !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("SaveIf against a stale prev: %v; want ErrTokenChanged", err)
	}
	marked := *v2
	marked.Spending = &twitchoauth.SpendMark{Refresh: twitchoauth.RefreshTokenHash("r2"), At: time.Now(), Holder: "h1"}
	if err := other.SaveIf(ctx, "7", v2, &marked); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveIf(ctx, "7", v2, v3); !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("SaveIf against a prev without the stored mark: %v; want ErrTokenChanged", err)
	}
	if err := a.SaveIf(ctx, "8", v1, v3); !errors.Is(err, twitchoauth.ErrTokenChanged) {
		t.Errorf("SaveIf of a missing record: %v; want ErrTokenChanged", err)
	}
	if got, err := a.Load(ctx, "7"); err != nil || got.AccessToken != "a2" || got.Spending == nil || got.Spending.Holder != "h1" {
		t.Errorf("stored after the refused SaveIfs: %+v, %v; want a2 with h1's mark", got, err)
	}
	if err := a.SaveIf(ctx, "7", &marked, v3); err != nil {
		t.Errorf("SaveIf over the marked pair it read: %v", err)
	}
}

// RotationUsers is how many users the rotation test refreshes.
const RotationUsers = 20

// testSealRotation: while the current key rotates (one replica still seals with the old key, one
// with the new, both opening either) and Reseal runs, two registries refresh every user at once:
// each refresh token reaches Twitch once, and every user ends with a working pair. Reseal then
// leaves every record sealed with the new key (a Keyring of the new key alone reads them all, and
// finds nothing to reseal), and no token Twitch issued is anywhere in the store's files.
func testSealRotation(t *testing.T, open SealOpen) {
	b := open(t)
	ctx := t.Context()
	_, fake := PublicTwitch(t)
	ids := UserIDs(100, RotationUsers)
	access := SeedPublic(t, b.Connect(t, TestKeyring(t, "k1", "k1")), fake, ids, 0, time.Now().Add(-time.Minute))
	ExpireAccess(fake, access)

	oldCurrent := b.Connect(t, TestKeyring(t, "k1", "k1", "k2"))
	newCurrent := b.Connect(t, TestKeyring(t, "k2", "k1", "k2"))
	var regs []*twitchoauth.UserTokens
	for _, s := range []SealedStore{oldCurrent, newCurrent} {
		u := twitchoauth.NewUserTokens(PublicClient(t, fake), s)
		if err := u.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		regs = append(regs, u)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, id := range ids {
		for _, u := range regs {
			wg.Go(func() {
				src, err := u.Source(id)
				if err != nil {
					fail(err)
					return
				}
				if _, err := src.TokenContext(ctx); err != nil {
					fail(fmt.Errorf("user %s: %w", id, err))
				}
			})
		}
	}
	for range 3 {
		wg.Go(func() {
			if _, err := newCurrent.Reseal(ctx); err != nil {
				fail(fmt.Errorf("reseal during the refreshes: %w", err))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	WantNoReuse(t, fake, len(ids))

	if _, err := newCurrent.Reseal(ctx); err != nil {
		t.Fatal(err)
	}
	only := b.Connect(t, TestKeyring(t, "k2", "k2"))
	if n, err := only.Reseal(ctx); err != nil || n != 0 {
		t.Errorf("Reseal with the new key alone after Reseal: %d, %v; want nothing left to reseal", n, err)
	}
	c := PublicClient(t, fake)
	for _, id := range ids {
		st, err := only.Load(ctx, id)
		if err != nil {
			t.Errorf("user %s with the new key alone: %v", id, err)
			continue
		}
		if v, err := c.ValidateToken(ctx, st.AccessToken); err != nil || v.UserID != id {
			t.Errorf("user %s: the stored token validates as %+v, %v", id, v, err)
		}
		if st.Spending != nil {
			t.Errorf("user %s: a spending mark is left", id)
		}
	}
	wantNoTokenAtRest(t, b, fake.IssuedTokens())
}

// wantNoTokenAtRest checks that no token of tokens is in any file the store keeps.
func wantNoTokenAtRest(t *testing.T, b SealedBackend, tokens []string) {
	t.Helper()
	var files []string
	for _, p := range b.AtRest(t) {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a server's temporary file, gone as it was listed: not at rest
			}
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(files) == 0 {
		t.Fatal("the store has no file at rest to look in")
	}
	find := newTokenFinder(tokens)
	size := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since it was listed (PostgreSQL's pg_internal.init, say)
		}
		if err != nil {
			t.Fatal(err)
		}
		size += len(data)
		if at := find.in(data); at >= 0 {
			t.Errorf("%s holds an issued token in the clear (%d bytes in)", f, at)
		}
	}
	t.Logf("looked for %d issued tokens in %d files, %d bytes", len(tokens), len(files), size)
}

// tokenFinder finds any of a set of tokens in data in one pass: it looks only at the runs of the
// bytes tokens are made of, at each length a token has.
type tokenFinder struct {
	tokens  map[string]bool
	lengths []int
	alpha   [256]bool
}

func newTokenFinder(tokens []string) *tokenFinder {
	f := &tokenFinder{tokens: map[string]bool{}}
	for _, tok := range tokens {
		if tok == "" || f.tokens[tok] {
			continue
		}
		f.tokens[tok] = true
		if !slices.Contains(f.lengths, len(tok)) {
			f.lengths = append(f.lengths, len(tok))
		}
		for _, c := range []byte(tok) {
			f.alpha[c] = true
		}
	}
	return f
}

// in returns where the first token found in data starts, or -1.
func (f *tokenFinder) in(data []byte) int {
	for start := 0; start < len(data); {
		if !f.alpha[data[start]] {
			start++
			continue
		}
		end := start
		for end < len(data) && f.alpha[data[end]] {
			end++
		}
		for i := start; i < end; i++ {
			for _, n := range f.lengths {
				if i+n <= end && f.tokens[string(data[i:i+n])] {
					return i
				}
			}
		}
		start = end
	}
	return -1
}

// TamperJSON returns a JSON record, as the JSON stores write it sealed, with one byte of its
// sealed value changed, and the rest as it was.
func TamperJSON(t testing.TB, data []byte) []byte {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	s, _ := rec["sealed"].(string)
	sealed, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(sealed) == 0 {
		t.Fatalf("the record holds no sealed value (%v)", err)
	}
	sealed[len(sealed)/2] ^= 1
	out := bytes.Replace(data, []byte(s), []byte(base64.StdEncoding.EncodeToString(sealed)), 1)
	if bytes.Equal(out, data) {
		t.Fatal("the sealed value was not changed")
	}
	return out
}
