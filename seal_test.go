package twitchoauth

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sealTestKey derives a test key from its ID, as stores/sqlstore's tests derive theirs.
func sealTestKey(id string) []byte {
	k := sha256.Sum256([]byte("sqlstore test key " + id))
	return k[:]
}

// plainAccess matches an access token of the tests' tok ("a" and a number) as a JSON string; a
// sealed value, base64 that may start with "a" too, is longer.
var plainAccess = regexp.MustCompile(`"a[0-9]+"`)

func sealTestKeyring(t testing.TB, current string, ids ...string) *Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		keys[id] = sealTestKey(id)
	}
	k, err := NewKeyring(current, keys)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeyringOpensSqlstoreRows: a value that stores/sqlstore sealed before sealing moved to the
// core (row key "12345", key ID "2025-01") opens, so rows sealed then still read.
func TestKeyringOpensSqlstoreRows(t *testing.T) {
	key, _ := hex.DecodeString("083ee832a579ef89999eb34bd6badf02cf9e46e6f2c5ad8bb3c5cd55ee75c479")
	if !bytes.Equal(key, sealTestKey("2025-01")) {
		t.Fatal("the test key is not the one the vector was sealed with")
	}
	sealed, _ := base64.StdEncoding.DecodeString("LAkUB5jlxKKU+p6wnJeun9MrhbbIlw1YZ3n5Ckrk6TN7rUgN34NSoCvHbVov5Slr6gRHapgv+Iw85xdB2eq0LSXs7DXD0hhaSOG079ztG0UaVTAexV8VFB+GiJE=")
	k := sealTestKeyring(t, "2026-01", "2025-01", "2026-01")
	access, refresh, err := k.Open("12345", "2025-01", sealed)
	if err != nil || access != "vector-access-token" || refresh != "vector-refresh-token" {
		t.Fatalf("Open of sqlstore's sealed value = %q, %q, %v", access, refresh, err)
	}
	if _, _, err := k.Open("12346", "2025-01", sealed); !errors.Is(err, ErrCannotUnseal) {
		t.Errorf("Open in another row: %v, want ErrCannotUnseal", err)
	}
	// The same value in a JSON record opens too.
	rec := fmt.Sprintf(`{"token":"","refresh":"","user_id":"12345","sealed":%q,"key_id":"2025-01"}`, base64.StdEncoding.EncodeToString(sealed))
	if st, err := k.DecodeStoredToken("12345", []byte(rec)); err != nil || st.AccessToken != "vector-access-token" || st.UserID != "12345" {
		t.Errorf("DecodeStoredToken of a record holding it = %+v, %v", st, err)
	}
}

// TestSealedRecord: a sealed record is the token's JSON with an empty pair, the sealed value and
// its key ID; it reads back whole, with its key only; altered, moved, or read without the key, it
// is refused with ErrCannotUnseal alone and an error that shows no token; a nil Keyring writes
// exactly the token file's JSON.
func TestSealedRecord(t *testing.T) {
	k := sealTestKeyring(t, "k1", "k1")
	tok := &StoredToken{AccessToken: "sekrit-access", RefreshToken: "sekrit-refresh", UserID: "42", Login: "bot",
		Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Spending: &SpendMark{Refresh: RefreshTokenHash("sekrit-refresh"), Holder: "h"}}
	data, err := k.EncodeStoredToken("42", tok)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("sekrit")) {
		t.Errorf("the record holds a token in the clear: %s", data)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil || fields["token"] != "" || fields["refresh"] != "" ||
		fields["key_id"] != "k1" || fields["login"] != "bot" || fields["sealed"] == nil {
		t.Errorf("record %s: %v", data, err)
	}
	if id, ok := SealedKeyID(data); id != "k1" || !ok {
		t.Errorf("SealedKeyID = %q, %v", id, ok)
	}
	got, err := k.DecodeStoredToken("42", data)
	if err != nil || got.AccessToken != tok.AccessToken || got.RefreshToken != tok.RefreshToken || got.Login != "bot" || !got.Matches(tok) {
		t.Errorf("DecodeStoredToken = %+v, %v", got, err)
	}
	again, _ := k.EncodeStoredToken("42", tok)
	if bytes.Equal(again, data) {
		t.Error("two sealings of one token are the same bytes: no nonce of its own")
	}

	wantRefused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrCannotUnseal) || errors.Is(err, ErrTokenCorrupt) || errors.Is(err, ErrTokenNotFound) {
			t.Errorf("%s: %v; want ErrCannotUnseal alone", what, err)
		}
		if err != nil && strings.Contains(err.Error(), "sekrit") {
			t.Errorf("%s: the error shows a token: %v", what, err)
		}
	}
	_, err = k.DecodeStoredToken("43", data)
	wantRefused("a record moved to another key", err)
	_, err = (*Keyring)(nil).DecodeStoredToken("42", data)
	wantRefused("no Keyring", err)
	_, err = DecodeStoredToken(data)
	wantRefused("DecodeStoredToken", err)
	_, err = sealTestKeyring(t, "k2", "k2").DecodeStoredToken("42", data)
	wantRefused("a Keyring without k1", err)
	other, _ := NewKeyring("k1", map[string][]byte{"k1": sealTestKey("other")})
	_, err = other.DecodeStoredToken("42", data)
	wantRefused("another key under ID k1", err)
	for name, edit := range map[string]func(map[string]any){
		"sealed altered": func(f map[string]any) { // its first character always changes
			s := f["sealed"].(string)
			c := "A"
			if s[0] == 'A' {
				c = "B"
			}
			f["sealed"] = c + s[1:]
		},
		"sealed not base64":  func(f map[string]any) { f["sealed"] = "!!" },
		"sealed cut short":   func(f map[string]any) { f["sealed"] = "AAAA" },
		"no key ID":          func(f map[string]any) { delete(f, "key_id") },
		"key ID changed":     func(f map[string]any) { f["key_id"] = "k2" },
		"no sealed value":    func(f map[string]any) { delete(f, "sealed") },
		"pair in clear, too": func(f map[string]any) { f["token"] = "sekrit-other"; delete(f, "sealed") },
	} {
		f := map[string]any{}
		json.Unmarshal(data, &f)
		edit(f)
		bad, _ := json.Marshal(f)
		_, err := k.DecodeStoredToken("42", bad)
		wantRefused(name, err)
	}

	plain, err := (*Keyring)(nil).EncodeStoredToken("42", tok)
	if want, _ := json.Marshal(tok); err != nil || !bytes.Equal(plain, want) {
		t.Errorf("a nil Keyring's record = %s, %v; want the token's JSON %s", plain, err, want)
	}
	if got, err := k.DecodeStoredToken("42", plain); err != nil || got.AccessToken != tok.AccessToken {
		t.Errorf("a plain record through a Keyring = %+v, %v; want it read as it is", got, err)
	}
	if _, ok := SealedKeyID(plain); ok {
		t.Error("SealedKeyID says a plain record is sealed")
	}
}

// TestJoinStoreErrors: however many records fail to open, the error is one short line that
// counts them, names the key IDs found and the Keyring's, and says what to check; one record's
// keeps its key; other errors stay as they are.
func TestJoinStoreErrors(t *testing.T) {
	k := sealTestKeyring(t, "k-new", "k-new")
	old := sealTestKeyring(t, "k-old", "k-old")
	var errs []error
	for i := range 1000 {
		key := fmt.Sprint(i)
		id, sealed, _ := old.Seal(key, "sekrit-a", "sekrit-r")
		_, _, err := k.Open(key, id, sealed)
		errs = append(errs, fmt.Errorf("store: %w", err))
	}
	err := JoinStoreErrors(errs...)
	msg := err.Error()
	t.Log(msg)
	if !errors.Is(err, ErrCannotUnseal) || strings.Contains(msg, "\n") || len(msg) > 200 {
		t.Errorf("JoinStoreErrors of 1000 = %d bytes, %d lines; want one short line that Is ErrCannotUnseal", len(msg), strings.Count(msg, "\n")+1)
	}
	want := `twitchoauth: 1000 stored tokens could not be opened: sealed with key ID "k-old"; the Keyring holds "k-new": check the Keyring`
	if msg != want {
		t.Errorf("JoinStoreErrors of 1000 =\n%s\nwant\n%s", msg, want)
	}
	one := JoinStoreErrors(nil, errs[7])
	if one != errs[7] || !strings.Contains(one.Error(), `key "7"`) {
		t.Errorf("JoinStoreErrors of one = %v; want that error", one)
	}
	other := errors.New("connection refused")
	mixed := JoinStoreErrors(append([]error{other}, errs[:3]...)...)
	if !errors.Is(mixed, other) || !errors.Is(mixed, ErrCannotUnseal) || strings.Count(mixed.Error(), "\n") != 1 {
		t.Errorf("JoinStoreErrors of a mix = %v", mixed)
	}
	if JoinStoreErrors(nil, nil) != nil {
		t.Error("JoinStoreErrors of nils is not nil")
	}
	_, _, err = (*Keyring)(nil).Open("7", "k-old", nil)
	if msg := JoinStoreErrors(err, err).Error(); !strings.Contains(msg, "2 stored tokens") || !strings.Contains(msg, "no Keyring") {
		t.Errorf("without a Keyring: %s", msg)
	}
}

// TestBindLeavesSealedFileWithWrongKey: the storage helper over a sealed token file it cannot open
// (a wrong key, or no Keyring) fails with ErrCannotUnseal, runs no login, and leaves the file
// byte for byte as it was.
func TestBindLeavesSealedFileWithWrongKey(t *testing.T) {
	for _, k := range []*Keyring{sealTestKeyring(t, "k2", "k2"), nil} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			e := newBindEnv(t)
			access, refresh := e.fake.IssueToken(e.c.ClientID, "42", scopesToStrings(botScopes), 0)
			sealed := &FileStore{Path: e.path, Keyring: sealTestKeyring(t, "k1", "k1")}
			if err := sealed.Save(t.Context(), "", &StoredToken{AccessToken: access, RefreshToken: refresh}); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(e.path)
			e.h.Store = &FileStore{Path: e.path, Keyring: k}
			_, err := e.bind(t)
			if !errors.Is(err, ErrCannotUnseal) || errors.Is(err, ErrTokenCorrupt) {
				t.Errorf("Bind = %v; want ErrCannotUnseal", err)
			}
			e.wantLogins(t, 0)
			if after, _ := os.ReadFile(e.path); !bytes.Equal(after, before) {
				t.Errorf("the token file changed: %d bytes, was %d", len(after), len(before)) // never printed: it may hold a token
			}
			if entries, _ := os.ReadDir(filepath.Dir(e.path)); len(entries) != 1 {
				t.Errorf("the directory holds %d files, want the token file alone", len(entries))
			}
		})
	}
}

// TestFileStoreSealedFiles: a FileStore without a Keyring writes exactly pyTwitchAPI's file; with
// one, a file written before is read as it is and sealed at its next write, and Reseal seals the
// rest.
func TestFileStoreSealedFiles(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	plain := NewFileStore(dir)
	tok := func(i int) *StoredToken {
		return &StoredToken{AccessToken: fmt.Sprint("a", i), RefreshToken: fmt.Sprint("r", i)}
	}
	for i := range 3 {
		if err := plain.Save(ctx, fmt.Sprint(i), tok(i)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "user_token.0.json"))
	if string(data) != "{\n  \"token\": \"a0\",\n  \"refresh\": \"r0\"\n}\n" {
		t.Errorf("an unsealed file is not pyTwitchAPI's:\n%s", data)
	}
	sealed := NewFileStore(dir)
	sealed.Keyring = sealTestKeyring(t, "k1", "k1")
	if got, err := sealed.Load(ctx, "1"); err != nil || got.AccessToken != "a1" {
		t.Fatalf("a plain file through a sealed store: %+v, %v", got, err)
	}
	if err := sealed.SaveIf(ctx, "1", tok(1), tok(10)); err != nil {
		t.Fatal(err)
	}
	if n, err := sealed.Reseal(ctx); err != nil || n != 2 {
		t.Errorf("Reseal = %d, %v; want the 2 plain files", n, err)
	}
	for i := range 3 {
		data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("user_token.%d.json", i)))
		if id, ok := SealedKeyID(data); !ok || id != "k1" || plainAccess.Match(data) {
			t.Errorf("file %d after Reseal:\n%s", i, data)
		}
	}
	if _, err := plain.Reseal(ctx); err == nil {
		t.Error("Reseal without a Keyring succeeded")
	}
}
