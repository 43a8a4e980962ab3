package twitchoauth

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/oauth2"
)

// When Run validates each user: slots spread over the period, backoffs, the renewal of refresh
// tokens that would lapse, and the schedule itself.

// recent reports whether a validation at t, by any replica, was one of the current slot: every
// replica's slot for a user lies within a 60th of the period of the others', so a validation
// within a tenth of the period is another replica's of the same slot (or one on the user's way
// in). Skipping it delays the user's next validation by a tenth of the period at most.
func (u *UserTokens) recent(t time.Time) bool {
	return !t.IsZero() && time.Since(t) < u.period()/10
}

// nextSlot returns the first of the user's slots after now: every replica's slot of a user lies
// at the same offset of the period, derived from the user ID, less this replica's jitter of at
// most a minute (a 60th of shorter periods).
func (u *UserTokens) nextSlot(userID string, now time.Time) time.Time {
	p := u.period()
	jitterMax := min(time.Minute, p/60)
	h := mix64(fnv64(userID))
	offset := time.Duration(h % uint64(p))
	if jitterMax > 0 {
		offset -= time.Duration(mix64(h^u.seed) % uint64(jitterMax))
	}
	// Slots are offset + k*p after the Unix epoch, so that replicas agree on them.
	since := max(now.Sub(time.Unix(0, 0).Add(offset)), 0)
	k := since/p + 1
	return time.Unix(0, 0).Add(offset).Add(k * p)
}

// backoff returns the wait before retry n (from 1): a 120th of the period (a second at least),
// doubled each time up to a quarter of it, with up to a fifth more at random.
func (u *UserTokens) backoff(n int) time.Duration {
	p := u.period()
	d := max(p/120, time.Second)
	for i := 1; i < n && d < p/4; i++ {
		d *= 2
	}
	d = min(d, p/4)
	return d + rand.N(d/5+1)
}

func (u *UserTokens) period() time.Duration {
	if u.ValidateEvery <= 0 {
		return defaultValidateEvery
	}
	return u.ValidateEvery
}

func (u *UserTokens) maxInFlight() int {
	if u.MaxInFlight <= 0 {
		return defaultMaxInFlight
	}
	return u.MaxInFlight
}

// fnv64 is FNV-1a of s: the same on every replica, unlike the runtime's seeded hashes.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix64 is splitmix64's finalizer: it spreads the bits of similar IDs (12345, 12346) over the
// whole range.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// latest returns the latest of times.
func latest(times ...time.Time) time.Time {
	var t time.Time
	for _, u := range times {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// floor returns when e's source will send a refresh again after a transient failure (zero: now).
func (e *userEntry) floor() time.Time {
	if f := e.src.backedOff(); f != nil {
		return f.until
	}
	return time.Time{}
}

// refreshRenewAfter is the age at which Run renews a public client's refresh token, which Twitch
// lets lapse after 30 days unused: with a week and more to spare for outages.
const refreshRenewAfter = 20 * 24 * time.Hour

// publicRefreshLifetime is how long a public client's refresh token works unused.
const publicRefreshLifetime = 30 * 24 * time.Hour

// lapsing reports whether st's refresh token is a public client's that is due to be renewed
// before it lapses: older than refreshRenewAfter, or of an unknown age.
func (u *UserTokens) lapsing(st *StoredToken) bool {
	return u.c.ClientSecret == "" && st.RefreshToken != "" &&
		(st.RefreshIssuedAt.IsZero() || time.Since(st.RefreshIssuedAt) > refreshRenewAfter)
}

// RefreshTokenExpiry returns when the user's stored refresh token lapses if it is not used: 30 days
// after it was issued for a public client (zero when that is not known), and zero for a
// confidential client, whose refresh tokens do not lapse. Past it the user must log in again. Run
// renews a public client's refresh token 20 days after it was issued, so while Run runs (and
// Twitch and the store are reachable) that time keeps moving ahead.
func (u *UserTokens) RefreshTokenExpiry(ctx context.Context, userID string) (time.Time, error) {
	st, err := u.store.Load(ctx, userID)
	if err != nil {
		return time.Time{}, fmt.Errorf("twitchoauth: refresh token expiry: %w", err)
	}
	if u.c.ClientSecret != "" {
		return time.Time{}, nil
	}
	return refreshLapsesAt(st), nil
}

// refreshLapsesAt returns when st's refresh token lapses unused if it is a public client's: zero
// when its age is not known.
func refreshLapsesAt(st *StoredToken) time.Time {
	if st.RefreshIssuedAt.IsZero() {
		return time.Time{}
	}
	return st.RefreshIssuedAt.Add(publicRefreshLifetime)
}

// dueHeap orders users by when their next validation is due; each entry knows its index.
type dueHeap []*userEntry

func (h dueHeap) Len() int { return len(h) }

func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }

func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = int32(i), int32(j)
}

func (h *dueHeap) Push(x any) {
	e := x.(*userEntry)
	e.index = int32(len(*h))
	*h = append(*h, e)
}

func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

// soon asks Run to pass over e within a second (its source holds a pair to store, or its
// refresh token is in doubt).
func (u *UserTokens) soon(e *userEntry) {
	u.mu.Lock()
	if !u.scheduling() {
		u.mu.Unlock()
		return
	}
	u.hurry = append(u.hurry, e)
	u.mu.Unlock()
	u.poke()
}

// poke tells Run that added, gone or hurry has entries.
func (u *UserTokens) poke() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// nextDue is when Run passes over e next after now: at the user's next slot, or, with KeepFresh,
// when its token is due to be refreshed (gap after now at the soonest), if that is sooner.
func (u *UserTokens) nextDue(e *userEntry, now time.Time, gap time.Duration) time.Time {
	due := u.nextSlot(e.src.key, now)
	if at, ok := u.refreshDue(e.src.cur.Load()); ok {
		if at = latest(at, now.Add(gap)); at.Before(due) {
			due = at
		}
	}
	return due
}

// refreshDueNow reports whether src's token is due to be refreshed by a KeepFresh writer.
func (u *UserTokens) refreshDueNow(src *UserTokenSource) bool {
	at, ok := u.refreshDue(src.cur.Load())
	return ok && !time.Now().Before(at)
}

// refreshDue returns when a KeepFresh writer refreshes tok: keepFreshAhead before it expires;
// ok is false when it does not (no KeepFresh, no refresh token, or no expiry).
func (u *UserTokens) refreshDue(tok *oauth2.Token) (at time.Time, ok bool) {
	if !u.KeepFresh || tok == nil || tok.RefreshToken == "" || tok.Expiry.IsZero() {
		return time.Time{}, false
	}
	return tok.Expiry.Add(-keepFreshAhead), true
}
