package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

// WatchTimeout bounds the wait for one change notification in the suite: a store on loopback
// reports one within milliseconds, a polling one within its interval.
const WatchTimeout = 10 * time.Second

// Watcher is a running WatchChanges of a store, with the keys it has reported so far.
type Watcher struct {
	keys chan string
	done chan error
	stop context.CancelFunc
}

// Watch starts store's WatchChanges for the test, waits until it watches (its first ""), and
// returns it; it is stopped when the test ends.
func Watch(t testing.TB, store twitchoauth.ChangeWatcher) *Watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{keys: make(chan string, 4096), done: make(chan error, 1), stop: cancel}
	go func() {
		w.done <- store.WatchChanges(ctx, func(key string) {
			select {
			case w.keys <- key:
			default: // the test reads what it needs; more is dropped, never blocks the store
			}
		})
	}()
	t.Cleanup(func() {
		if err := w.Stop(); !errors.Is(err, context.Canceled) {
			t.Errorf("WatchChanges returned %v once its context ended; want context.Canceled", err)
		}
	})
	w.Want(t, "")
	return w
}

// Stop ends the watch and returns what WatchChanges returned.
func (w *Watcher) Stop() error {
	w.stop()
	select {
	case err := <-w.done:
		w.done <- err
		return err
	case <-time.After(WatchTimeout):
		return errors.New("WatchChanges did not return once its context ended")
	}
}

// Want waits for the store to report key, passing over the other keys it reports meanwhile.
func (w *Watcher) Want(t testing.TB, key string) {
	t.Helper()
	timeout := time.After(WatchTimeout)
	for {
		select {
		case got := <-w.keys:
			if got == key {
				return
			}
		case err := <-w.done:
			w.done <- err
			t.Fatalf("WatchChanges returned %v before it reported %q", err, key)
		case <-timeout:
			t.Fatalf("the store did not report a change of %q within %v", key, WatchTimeout)
		}
	}
}

// testWatch: a store that reports its changes reports, to a watcher on one client, each key saved
// (Save and SaveIf) or deleted through another, and its own writes too; and WatchChanges returns
// once its context ends.
func testWatch(t *testing.T, open Open) {
	connect := open(t)
	a, b := connect(t), connect(t)
	wa, ok := a.(twitchoauth.ChangeWatcher)
	if !ok {
		t.Skip("the store does not report its changes (no twitchoauth.ChangeWatcher)")
	}
	w := Watch(t, wa)
	ctx := t.Context()
	first := &twitchoauth.StoredToken{AccessToken: "a1", RefreshToken: "r1", UserID: "w1"}
	if err := b.Save(ctx, "w1", first); err != nil {
		t.Fatal(err)
	}
	w.Want(t, "w1")
	if cs, ok := b.(twitchoauth.ConditionalSaver); ok {
		if err := cs.SaveIf(ctx, "w1", first, &twitchoauth.StoredToken{AccessToken: "a2", RefreshToken: "r2", UserID: "w1"}); err != nil {
			t.Fatal(err)
		}
		w.Want(t, "w1")
	}
	if err := b.Delete(ctx, "w1"); err != nil {
		t.Fatal(err)
	}
	w.Want(t, "w1")
	if err := a.Save(ctx, "w2", first); err != nil {
		t.Fatal(err)
	}
	w.Want(t, "w2")
}
