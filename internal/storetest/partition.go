package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
)

// Partition is a store's server that PartitionAtMark cuts one replica off from.
type Partition struct {
	Server string // what the log calls it: "Redis", "PostgreSQL"
	Addr   string // the server's address, to which the proxy forwards
	// Open returns a new client (a replica's) of the server at addr: the server's own address, or
	// the proxy's. Every client sees the same data.
	Open func(t *testing.T, addr string) twitchoauth.TokenStore
}

// The faults of PartitionAtMark, from the moment the cut-off replica's first mark write is sent.
const (
	repliesLost = 1500 * time.Millisecond // the server's replies are lost, its requests made
	cutFor      = 10 * time.Second        // then every connection is reset, every new one refused
	// partitionLockTTL is the replicas' LockTTL. The locks the cut-off replica held as it was cut
	// off (and any its lost replies took) are never released: they block their users on every
	// replica until their lease ends, after the heal. With the default (2 min), that is most of
	// two minutes.
	partitionLockTTL = 20 * time.Second
)

// PartitionAtMark: four replicas, each a registry (UserTokens, running Run) on a client of its
// own, serve 100 users of a public client whose tokens have expired, at Twitch and in the store,
// so that every use refreshes; each replica asks for every user's token, twelve at a time. The
// fourth replica reaches the server through a Proxy. As its first write of a spending mark goes
// out, the server's replies to it are lost (the write is made, and the replica never hears so)
// for repliesLost; then it is cut off (connections reset, new ones refused) for cutFor; then
// healed. Twitch stays reachable for every replica. After the heal, every user's Token succeeds on
// every replica, within a lock's lease (partitionLockTTL) of it; no replica calls OnRevoked; no refresh token is sent twice, and each user was
// refreshed once; and the store holds, for every user, the pair every replica uses, unmarked,
// which Twitch honours.
func PartitionAtMark(t *testing.T, p Partition) {
	c, fake := PublicTwitch(t)
	LogLibrary(t, c)
	ctx, cancel := context.WithTimeout(t.Context(), FaultTimeout)
	defer cancel()
	const users, replicas, cutOff, asking = 100, 4, 3, 12
	ids := UserIDs(9100, users)
	access := SeedPublic(t, p.Open(t, p.Addr), fake, ids, 0, time.Now().Add(-time.Minute))
	ExpireAccess(fake, access)
	proxy := StartProxy(t, p.Addr)
	trip := TripAtMark(t, p.Open(t, proxy.Addr), proxy, p.Open(t, p.Addr))

	var mu sync.Mutex
	var revoked []string
	recovered := make([]int, replicas)
	regs := make([]*twitchoauth.UserTokens, replicas)
	for r := range regs {
		var store twitchoauth.TokenStore = trip
		if r != cutOff {
			store = p.Open(t, p.Addr)
		}
		reg := twitchoauth.NewUserTokens(c, store)
		reg.LockTTL = partitionLockTTL
		reg.OnRevoked = func(id string, err error) {
			mu.Lock()
			defer mu.Unlock()
			revoked = append(revoked, fmt.Sprintf("replica %d, user %s: %v", r, id, err))
		}
		reg.OnRecovered = func(string) {
			mu.Lock()
			defer mu.Unlock()
			recovered[r]++
		}
		if err := reg.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := reg.Users(); len(got) != users {
			t.Fatalf("replica %d has %d users, want %d", r, len(got), users)
		}
		regs[r] = reg
	}
	fake.ResetRequests()
	runCtx, stopRuns := context.WithCancel(ctx)
	var runs sync.WaitGroup
	stop := sync.OnceFunc(func() {
		stopRuns()
		runs.Wait()
	})
	t.Cleanup(stop)
	for _, reg := range regs {
		runs.Go(func() { reg.Run(runCtx) })
	}

	// The faults, from the cut-off replica's first mark write on.
	healed := make(chan time.Time, 1)
	go func() {
		select {
		case <-trip.Tripped():
		case <-ctx.Done():
			return
		}
		for _, step := range []struct {
			after time.Duration
			do    func()
		}{{repliesLost, proxy.Cut}, {cutFor, proxy.Heal}} {
			select {
			case <-time.After(step.after):
			case <-ctx.Done():
				return
			}
			step.do()
		}
		healed <- time.Now()
	}()

	// Every replica asks for every user's token, asking at a time, each from a quarter of the
	// users of its own on (so that the cut-off replica marks some before the others get to them).
	first := make([][]error, replicas)
	var asks sync.WaitGroup
	t.Cleanup(asks.Wait)
	for r, reg := range regs {
		first[r] = make([]error, users)
		each(&asks, users, asking, func(i int) {
			i = (i + r*users/replicas) % users
			src, err := reg.Source(ids[i])
			if err == nil {
				_, err = src.TokenContext(ctx)
			}
			first[r][i] = err
		})
	}
	var healAt time.Time
	select {
	case healAt = <-healed:
	case <-ctx.Done():
		t.Fatalf("the partition never began and healed: %v", ctx.Err())
	}

	// After the heal, every user's Token succeeds on every replica, at once or once a backoff,
	// a lock's lease or the replica's store client lets it.
	toks := make([][]*oauth2.Token, replicas)
	var usable sync.WaitGroup
	for r, reg := range regs {
		toks[r] = make([]*oauth2.Token, users)
		each(&usable, users, asking, func(i int) {
			src, err := reg.Source(ids[i])
			if err != nil {
				t.Errorf("replica %d, user %s: %v", r, ids[i], err)
				return
			}
			for {
				tok, err := src.TokenContext(ctx)
				switch {
				case err == nil:
					toks[r][i] = tok
					return
				case ctx.Err() != nil:
					t.Errorf("replica %d, user %s: not usable %v after the heal: %v", r, ids[i], time.Since(healAt).Round(time.Millisecond), err)
					return
				case errors.Is(err, twitchoauth.ErrInvalidRefreshToken) && !errors.Is(err, twitchoauth.ErrRefreshInDoubt):
					t.Errorf("replica %d, user %s after the heal: %v", r, ids[i], err)
					return
				}
				select {
				case <-time.After(50 * time.Millisecond): // a poll of the source, which answers from its backoff meanwhile
				case <-ctx.Done():
				}
			}
		})
	}
	usable.Wait()
	tookAll := time.Since(healAt)
	asks.Wait()
	stop()

	failed := make([]int, replicas)
	doubts := 0
	for r := range first {
		for _, err := range first[r] {
			if err != nil {
				failed[r]++
			}
			if errors.Is(err, twitchoauth.ErrRefreshInDoubt) {
				doubts++
			}
		}
	}
	n := 0
	for r := range toks {
		for _, tok := range toks[r] {
			if tok != nil {
				n++
			}
		}
	}
	t.Logf("%d refresh requests; %d of %d users usable on all %d replicas %v after the heal", fake.CountGrant("refresh_token"), n/replicas, users, replicas, tookAll.Round(time.Millisecond))
	markFailed, markMade := trip.Failed()
	t.Logf("the cut-off replica's mark writes: %d failed while its replies were lost or it was cut off, of which %d reached %s (their reply lost); %d bytes of replies dropped",
		markFailed, markMade, p.Server, proxy.Dropped())
	if markMade == 0 {
		t.Error("no mark write of the cut-off replica was made with its reply lost: the fault did not happen")
	}
	t.Logf("first Token calls that failed, by replica: %v; %d in doubt; OnRecovered calls by replica: %v", failed, doubts, recovered)
	if tookAll > partitionLockTTL {
		t.Errorf("every user usable on every replica %v after the heal; want within the lease of a lock the cut-off replica could not release (%v)", tookAll.Round(time.Millisecond), partitionLockTTL)
	}
	mu.Lock()
	if len(revoked) > 0 {
		t.Errorf("OnRevoked called %d times:\n%s", len(revoked), strings.Join(revoked, "\n"))
	}
	mu.Unlock()
	if t.Failed() {
		return
	}
	want := map[string]string{}
	check := p.Open(t, p.Addr)
	for i, id := range ids {
		want[id] = toks[0][i].AccessToken
		for r := range toks {
			if toks[r][i].AccessToken != want[id] {
				t.Errorf("user %s: replica %d uses another token than replica 0", id, r)
			}
		}
	}
	WantStored(t, ctx, check, ids, want)
	WantNoReuse(t, fake, users)
	WantWorking(t, ctx, c, fake, check, ids)
}

// each runs f(i) for i from 0 to n-1 in k goroutines counted in wg.
func each(wg *sync.WaitGroup, n, k int, f func(i int)) {
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range k {
		wg.Go(func() {
			for i := range next {
				f(i)
			}
		})
	}
}

// MarkTrip is the store of a replica that reaches its server through a Proxy. At its first write
// of a spending mark, it makes the proxy lose the server's replies from that write on
// (DropRepliesAfter, with the mark's refresh hash): the write goes over the real network, the
// server makes it, and its reply is lost, as every reply is after it until the proxy heals.
type MarkTrip struct {
	SharedStore
	proxy   *Proxy
	check   twitchoauth.TokenStore // a client of the server's own address
	once    sync.Once
	tripped chan struct{}
	failed  atomic.Int32 // mark writes that failed (replies lost, or the proxy cut)
	made    atomic.Int32 // of those, the ones the server made: their reply was lost
}

// TripAtMark returns store, a client of the server through proxy, as a MarkTrip; check is a client
// of the server's own address, through which it sees which failed mark writes were made.
func TripAtMark(t testing.TB, store twitchoauth.TokenStore, proxy *Proxy, check twitchoauth.TokenStore) *MarkTrip {
	return &MarkTrip{SharedStore: Shared(t, store), proxy: proxy, check: check, tripped: make(chan struct{})}
}

// Tripped is closed once the first mark write has set the proxy to lose replies.
func (m *MarkTrip) Tripped() <-chan struct{} { return m.tripped }

// Failed returns how many mark writes failed (other than for a changed token) since it tripped,
// and how many of those the server made all the same: their reply was lost.
func (m *MarkTrip) Failed() (failed, made int) { return int(m.failed.Load()), int(m.made.Load()) }

func (m *MarkTrip) SaveIf(ctx context.Context, key string, prev, next *twitchoauth.StoredToken) error {
	if next.Spending == nil {
		return m.SharedStore.SaveIf(ctx, key, prev, next)
	}
	m.once.Do(func() {
		m.proxy.DropRepliesAfter([]byte(next.Spending.Refresh)) // in the write itself, not a read before it
		close(m.tripped)
	})
	err := m.SharedStore.SaveIf(ctx, key, prev, next)
	if err == nil || errors.Is(err, twitchoauth.ErrTokenChanged) {
		return err
	}
	m.failed.Add(1)
	// The server holds a mark made until the replica takes it back, which it can only do once the
	// proxy heals.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if st, lerr := m.check.Load(lctx, key); lerr == nil && st.Spending != nil &&
		st.Spending.Holder == next.Spending.Holder && st.Spending.At.Equal(next.Spending.At) {
		m.made.Add(1)
	}
	return err
}
