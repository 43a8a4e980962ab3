package storetest

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

// Encode is how a store encodes a record, for the sizes of WantRecordLimit.
type Encode func(*twitchoauth.StoredToken) ([]byte, error)

// SizedToken returns a token whose access and refresh tokens are "sekrit-"+access and
// "sekrit-refresh-"+access, and whose record, as encode makes it, is size bytes: its login pads
// it.
func SizedToken(t testing.TB, size int, access string, encode Encode) *twitchoauth.StoredToken {
	t.Helper()
	st := &twitchoauth.StoredToken{AccessToken: "sekrit-" + access, RefreshToken: "sekrit-refresh-" + access, UserID: "1", Login: "x"}
	data, err := encode(st)
	if err != nil {
		t.Fatal(err)
	}
	st.Login = strings.Repeat("x", size-len(data)+1)
	if data, err = encode(st); err != nil || len(data) != size {
		t.Fatalf("the padded token encodes to %d bytes, %v; want %d", len(data), err, size)
	}
	return st
}

// WantRecordLimit checks the record limit of store: a token whose record (as encode makes it) is
// twitchoauth.MaxStoredTokenSize bytes is saved and loaded whole; one a byte larger is refused by
// Save and by SaveIf (when the store has it), with an error that gives its size and the limit and
// quotes nothing of it, and nothing is written.
func WantRecordLimit(t *testing.T, ctx context.Context, store twitchoauth.TokenStore, encode Encode) {
	t.Helper()
	const key = "limit"
	limit := twitchoauth.MaxStoredTokenSize
	at := SizedToken(t, limit, "at", encode)
	if err := store.Save(ctx, key, at); err != nil {
		t.Fatalf("Save of a record of %d bytes, the limit: %v", limit, err)
	}
	wantStored := func(op string) {
		t.Helper()
		st, err := store.Load(ctx, key)
		if err != nil || st.AccessToken != at.AccessToken || st.Login != at.Login {
			t.Errorf("after %s: Load = %v; want the record of %d bytes saved before", op, err, limit)
		}
	}
	wantStored("Save at the limit")
	over := SizedToken(t, limit+1, "over", encode)
	wantRefused := func(op string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s of a record of %d bytes, over the limit of %d: stored", op, limit+1, limit)
		case !strings.Contains(err.Error(), strconv.Itoa(limit+1)) || !strings.Contains(err.Error(), strconv.Itoa(limit)):
			t.Errorf("%s over the limit: %v; want the record's size (%d) and the limit (%d)", op, err, limit+1, limit)
		case strings.Contains(err.Error(), "sekrit") || strings.Contains(err.Error(), "xxxx"):
			t.Errorf("%s over the limit: the error quotes the record: %.200s", op, err)
		case errors.Is(err, twitchoauth.ErrTokenChanged):
			t.Errorf("%s over the limit: %v; want a refusal, not a changed token", op, err)
		}
	}
	wantRefused("Save", store.Save(ctx, key, over))
	wantStored("a refused Save")
	if cs, ok := store.(twitchoauth.ConditionalSaver); ok {
		wantRefused("SaveIf", cs.SaveIf(ctx, key, at, over))
		wantStored("a refused SaveIf")
	}
	wantRefused("Save of a new key", store.Save(ctx, key+"-new", over))
	if _, err := store.Load(ctx, key+"-new"); !errors.Is(err, twitchoauth.ErrTokenNotFound) {
		t.Errorf("Load after a refused Save of a new key: %v; want ErrTokenNotFound", err)
	}
}

// LongKey is a key of 1 MiB, whose errors must stay short.
var LongKey = strings.Repeat("k", 1<<20)

// maxErrorLen is how long an error naming LongKey may be.
const maxErrorLen = 300

// WantShortError fails the test unless err is an error of fewer than 300 bytes: what a store
// says of an operation on LongKey quotes a short prefix of it at most.
func WantShortError(t *testing.T, op string, err error) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("%s with a long key: no error", op)
	case len(err.Error()) >= maxErrorLen:
		t.Errorf("%s with a long key: an error of %d bytes, %d or more: %.200s…", op, len(err.Error()), maxErrorLen, err)
	}
}

// KeyedStore is a store with the optional interfaces WantShortKeyErrors drives.
type KeyedStore interface {
	twitchoauth.TokenStore
	twitchoauth.LeaseLocker
	twitchoauth.ConditionalSaver
}

// WantShortKeyErrors checks that store's errors quote a short prefix of key at most when a
// canceled context ends each operation, and when a held lock is waited for until the context
// ends; it returns the lease it holds on key, for the caller to lose and check further.
func WantShortKeyErrors(t *testing.T, ctx context.Context, s KeyedStore, key string, prev, next *twitchoauth.StoredToken) twitchoauth.Lease {
	t.Helper()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, err := s.Load(canceled, key)
	WantShortError(t, "Load with a canceled context", err)
	WantShortError(t, "Save with a canceled context", s.Save(canceled, key, prev))
	WantShortError(t, "SaveIf with a canceled context", s.SaveIf(canceled, key, prev, next))
	WantShortError(t, "Delete with a canceled context", s.Delete(canceled, key))
	_, err = s.Lock(canceled, key, time.Minute)
	WantShortError(t, "Lock with a canceled context", err)

	l, err := s.LockLease(ctx, key, time.Minute)
	if err != nil {
		t.Fatalf("LockLease of a key of %d bytes: %.300v", len(key), err)
	}
	// Held: another holder polls it until its context ends (whenever that is, the error is the same).
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = s.Lock(short, key, time.Minute)
	cancelShort()
	WantShortError(t, "Lock of a held lock until the context ends", err)
	return l
}
