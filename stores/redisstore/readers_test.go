package redisstore

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// countTwitch is a transport that counts the requests a replica sends to Twitch's token and
// validate endpoints.
type countTwitch struct {
	token, validate atomic.Int64
}

func (c *countTwitch) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case strings.HasSuffix(req.URL.Path, "/token"):
		c.token.Add(1)
	case strings.HasSuffix(req.URL.Path, "/validate"):
		c.validate.Add(1)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// countedClient returns a client of the fake's public app whose requests to Twitch n counts, and
// whose log the test prints if it fails.
func countedClient(t *testing.T, fake *faketwitch.Server, n *countTwitch) *twitchoauth.Client {
	c := storetest.PublicClient(t, fake)
	c.HTTPClient = &http.Client{Transport: n, Timeout: 30 * time.Second}
	return c
}

// TestReadersAndWriterRedis: one writer (KeepFresh) and three readers (ReadOnly), each with a
// Redis client and a twitchoauth.Client of its own, share 1,000 users whose tokens expire
// together, in under ten minutes: the writer refreshes them at once, and every reader serves each
// user the writer's new token, having sent nothing to Twitch. Then the writer is killed: the
// readers keep serving the tokens that have not expired, and for a user whose stored token has,
// a reader fails with ErrNoFreshToken after ReaderWait, sending nothing.
func TestReadersAndWriterRedis(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), storetest.FaultTimeout)
	defer cancel()
	srv := startRedis(t)
	_, fake := storetest.PublicTwitch(t)
	check := New(newClient(t, srv.Addr))
	ids := storetest.UserIDs(8000, 1000)
	seeded := storetest.SeedPublic(t, check, fake, ids, 0, time.Now().Add(9*time.Minute))

	var writerCalls countTwitch
	writerRDB := redis.NewClient(&redis.Options{Addr: srv.Addr})
	t.Cleanup(func() { writerRDB.Close() })
	writer := twitchoauth.NewUserTokens(countedClient(t, fake, &writerCalls), New(writerRDB))
	writer.KeepFresh = true
	readers := make([]*twitchoauth.UserTokens, 3)
	calls := make([]countTwitch, len(readers))
	for i := range readers {
		readers[i] = twitchoauth.NewUserTokens(countedClient(t, fake, &calls[i]), New(newClient(t, srv.Addr)))
		readers[i].ReadOnly = true
		readers[i].ReaderWait = time.Second
	}
	readersCtx, stopReaders := context.WithCancel(context.WithoutCancel(t.Context()))
	writerCtx, killWriter := context.WithCancel(context.WithoutCancel(t.Context()))
	var wg, writerRun sync.WaitGroup
	t.Cleanup(func() {
		killWriter()
		stopReaders()
		wg.Wait()
		writerRun.Wait()
	})
	for _, r := range readers {
		wg.Go(func() { r.Run(readersCtx) })
	}
	for _, r := range readers {
		storetest.WaitUntil(t, ctx, "each reader to list every user", func() bool { return len(r.Users()) == len(ids) })
	}
	start := time.Now()
	writerRun.Go(func() { writer.Run(writerCtx) })

	// The writer's new tokens, as the store holds them.
	stored := make(map[string]string, len(ids))
	for i, id := range ids {
		storetest.WaitUntil(t, ctx, "the writer to store user "+id+"'s new token", func() bool {
			st, err := check.Load(ctx, id)
			if err == nil && st.AccessToken != seeded[i] {
				stored[id] = st.AccessToken
				return true
			}
			return false
		})
	}
	refreshed := time.Now()
	t.Logf("the writer refreshed %d tokens due in %v", len(ids), refreshed.Sub(start).Round(time.Millisecond))
	for i, r := range readers {
		for _, id := range ids {
			src, err := r.Source(id)
			if err != nil {
				t.Fatal(err)
			}
			storetest.WaitUntil(t, ctx, "a reader to serve the writer's token", func() bool {
				tok, err := src.TokenContext(ctx)
				if err != nil {
					t.Fatalf("reader %d, user %s: %v", i, id, err)
				}
				return tok.AccessToken == stored[id]
			})
		}
	}
	t.Logf("every reader served every user the writer's token %v after the writer had stored the last",
		time.Since(refreshed).Round(time.Millisecond))
	if n := fake.CountGrant("refresh_token"); n != len(ids) {
		t.Errorf("%d refreshes for %d users; want one each, by the writer", n, len(ids))
	}
	storetest.WantNoReuse(t, fake, len(ids))
	t.Logf("the writer sent %d token and %d validate requests", writerCalls.token.Load(), writerCalls.validate.Load())
	wantNoCalls := func(when string) {
		t.Helper()
		for i := range calls {
			if tok, val := calls[i].token.Load(), calls[i].validate.Load(); tok != 0 || val != 0 {
				t.Errorf("%s: reader %d sent %d token and %d validate requests; want none", when, i, tok, val)
			}
		}
	}
	wantNoCalls("while the writer ran")

	// The writer dies.
	killWriter()
	writerRun.Wait()
	writerRDB.Close()
	for i, r := range readers {
		for _, id := range ids[1:] {
			src, _ := r.Source(id)
			if tok, err := src.TokenContext(ctx); err != nil || tok.AccessToken != stored[id] {
				t.Fatalf("reader %d, user %s, the writer dead: %v; want the stored token served", i, id, err)
			}
		}
	}
	// A user the readers first hear of with an expired token, stored by another client once the
	// writer is dead: each reader waits ReaderWait for a writer, then fails.
	late := "9000"
	storetest.ExpireAccess(fake, storetest.SeedPublic(t, check, fake, []string{late}, 0, time.Now().Add(-time.Minute)))
	for i, r := range readers {
		storetest.WaitUntil(t, ctx, "a reader to hear of the user stored", func() bool { return slices.Contains(r.Users(), late) })
		wantNoFreshToken(t, ctx, i, r, late)
	}
	wantNoCalls("once the writer was dead")

	t.Run("StoredRecordExpired", func(t *testing.T) {
		// User ids[0]'s stored token expires, at Twitch and in the store, written by another client.
		st, err := check.Load(ctx, ids[0])
		if err != nil {
			t.Fatal(err)
		}
		fake.ExpireAccessToken(st.AccessToken)
		st.Expiry = time.Now().Add(-time.Minute)
		if err := check.Save(ctx, ids[0], st); err != nil {
			t.Fatal(err)
		}
		for i, r := range readers {
			src, err := r.Source(ids[0])
			if err != nil {
				t.Fatal(err)
			}
			// The reader hears of the write through its watch; until then it hands out its copy.
			// Then it waits ReaderWait for a writer, and fails.
			var last error
			storetest.WaitUntil(t, ctx, "a reader to hear the stored token expired", func() bool {
				_, last = src.TokenContext(ctx)
				return last != nil
			})
			if !errors.Is(last, twitchoauth.ErrNoFreshToken) {
				t.Errorf("reader %d, user %s: %v; want ErrNoFreshToken", i, ids[0], last)
			}
		}
		wantNoCalls("once the writer was dead")
	})
}

// wantNoFreshToken checks that reader i's Token for id fails with ErrNoFreshToken after its
// ReaderWait, and logs how long it took.
func wantNoFreshToken(t *testing.T, ctx context.Context, i int, r *twitchoauth.UserTokens, id string) {
	t.Helper()
	src, err := r.Source(id)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	tok, err := src.TokenContext(ctx)
	took := time.Since(began)
	t.Logf("reader %d, user %s's stored token expired and no writer: %v after %v", i, id, err, took.Round(time.Millisecond))
	if !errors.Is(err, twitchoauth.ErrNoFreshToken) {
		t.Errorf("reader %d, user %s: Token returned %v, %v; want ErrNoFreshToken", i, id, tok != nil, err)
	} else if took < r.ReaderWait || took > r.ReaderWait+time.Second {
		t.Errorf("reader %d failed after %v; want ReaderWait, %v", i, took, r.ReaderWait)
	}
}
