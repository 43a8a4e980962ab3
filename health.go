package twitchoauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A registry's state on demand, for an admin page or a readiness probe: [UserTokens.Health] and
// [UserTokens.HealthHandler].

// healthProbeKey is the key the store probe loads: no Twitch user ID (all digits) is it.
const healthProbeKey = "twitchoauth-health-probe"

// healthProbeTimeout bounds HealthHandler's call of Health, store reads and all.
const healthProbeTimeout = 5 * time.Second

// HealthState is the state of a registered user, as [UserTokens.Health] counts it.
type HealthState string

// The states of a user, from the most urgent. A user in more than one is counted in the first.
const (
	// HealthInDoubt: a public client's refresh token may have been spent without its new pair
	// being stored (the error Is [ErrRefreshInDoubt]). The user's calls fail until the pair turns
	// up or the mark is taken back (OnRecovered then hears it); only if neither comes do they
	// need a new login.
	HealthInDoubt HealthState = "in_doubt"
	// HealthRevoked: the grant is gone (the user disconnected the app or changed their password)
	// and the user is kept because KeepRevoked is set: they must log in again.
	HealthRevoked HealthState = "revoked"
	// HealthPending: the user's source holds a pair, or a mark to take back, that the store has
	// not taken ([UserTokenSource.Pending]); Run stores it once the store answers.
	HealthPending HealthState = "pending"
	// HealthBackingOff: the last refresh failed for a reason that may pass (an outage, a 429);
	// no refresh is sent until the backoff ends.
	HealthBackingOff HealthState = "backing_off"
	// HealthIdle: no live token is held; the user's next use refreshes (or, on a reader, reads
	// the store).
	HealthIdle HealthState = "idle"
	// HealthFresh: a live token is held.
	HealthFresh HealthState = "fresh"
)

// Health is a registry's state at a moment, from memory and one read of the store. It holds no
// token. User IDs are personal data, listed only for the users who need action (and, when asked
// for, those whose refresh token lapses soon): an operator needs them to act.
type Health struct {
	// At is when the state was taken.
	At time.Time `json:"at"`
	// Running says whether [UserTokens.Run] is running.
	Running bool `json:"running"`
	// Watching says whether Run watches the store's changes with no gap since it last read every
	// user: what this replica holds is what the store holds.
	Watching bool `json:"watching"`
	// ReadOnly is the registry's ReadOnly: a reader replica.
	ReadOnly bool `json:"read_only"`
	// Store is what the probe of the store found.
	Store StoreHealth `json:"store"`
	// Users is the number of registered users: the sum of States.
	Users int `json:"users"`
	// States counts the users by state, each once, in the most urgent of its states.
	States HealthCounts `json:"states"`
	// NeedAction lists the users in doubt or whose grant is gone, by user ID; empty, not nil,
	// when there are none.
	NeedAction []UserHealth `json:"need_action"`
	// Lapsing is set when [HealthOptions].Lapsing asked for it.
	Lapsing *LapsingHealth `json:"lapsing,omitempty"`
}

// StoreHealth is what a probe of the store found: a Load of a key no user has, which a store that
// answers reports as [ErrTokenNotFound].
type StoreHealth struct {
	// Reachable says whether the store answered.
	Reachable bool `json:"reachable"`
	// Latency is how long the Load took (nanoseconds in JSON).
	Latency time.Duration `json:"latency"`
	// Error is the store's error when it did not answer.
	Error string `json:"error,omitempty"`
}

// HealthCounts counts users by [HealthState].
type HealthCounts struct {
	InDoubt    int `json:"in_doubt"`
	Revoked    int `json:"revoked"`
	Pending    int `json:"pending"`
	BackingOff int `json:"backing_off"`
	Idle       int `json:"idle"`
	Fresh      int `json:"fresh"`
}

// add counts one user in state s.
func (c *HealthCounts) add(s HealthState) {
	switch s {
	case HealthInDoubt:
		c.InDoubt++
	case HealthRevoked:
		c.Revoked++
	case HealthPending:
		c.Pending++
	case HealthBackingOff:
		c.BackingOff++
	case HealthIdle:
		c.Idle++
	default:
		c.Fresh++
	}
}

// UserHealth is a user who needs action.
type UserHealth struct {
	UserID string      `json:"user_id"`
	State  HealthState `json:"state"`
	// Error is the error the user's calls fail with.
	Error string `json:"error"`
	// ValidatedAt is when the user's token was last validated, as this replica last read it from
	// the store (by any replica); zero when it has not read it.
	ValidatedAt time.Time `json:"validated_at,omitzero"`
}

// LapsingHealth lists the users whose public-client refresh token lapses soon (see
// [UserTokens.RefreshTokenExpiry]).
type LapsingHealth struct {
	// Within is [HealthOptions].Lapsing.
	Within time.Duration `json:"within"`
	// At is when the records were read: up to a minute before the report's own At when
	// [UserTokens.HealthHandler] served an earlier read again.
	At time.Time `json:"at"`
	// Read is the number of users' records read; Unread of those that could not be read (a
	// store error, or ctx ended first), Error the first such error.
	Read   int    `json:"read"`
	Unread int    `json:"unread"`
	Error  string `json:"error,omitempty"`
	// Users are the users whose refresh token lapses within Within, sorted by user ID.
	Users []LapsingUser `json:"users"`
}

// LapsingUser is a user whose refresh token lapses soon: past Expiry, they must log in again.
type LapsingUser struct {
	UserID string `json:"user_id"`
	// Expiry is when the refresh token lapses if unused; zero when its age is not known (the
	// store has no RefreshIssuedAt), which Run treats as due for renewal.
	Expiry time.Time `json:"refresh_expiry,omitzero"`
}

// HealthOptions are the options of [UserTokens.Health]. The zero value asks for the state in
// memory and one store probe.
type HealthOptions struct {
	// Lapsing, if positive, also lists the users whose public client's refresh token lapses
	// within it (Twitch lets one lapse 30 days after it was issued, unused). That age lives only
	// in the store: this reads every registered user's record, MaxInFlight at a time, until ctx
	// ends: a store read per user, so for a few users or an occasional admin page, not for a
	// probe every few seconds. For a confidential client, whose refresh tokens do not lapse,
	// nothing is read.
	Lapsing time.Duration
}

// Health returns the registry's state: the users counted by state (see [HealthState]), those who
// need action listed with their error, whether Run runs and watches the store, and a probe of the
// store (a Load of a key no user has, bounded by ctx). By default that probe is its only I/O, and
// beside the report itself it allocates only for the users it lists (10,000 users take about a
// tenth of a millisecond); opts.Lapsing adds a store read per user. It is safe to call at any
// time, also while Run runs; each user's state is read without waiting for the user's refresh.
func (u *UserTokens) Health(ctx context.Context, opts HealthOptions) *Health {
	h := &Health{Running: u.isRunning(), Watching: u.watching.Load(), ReadOnly: u.ReadOnly, NeedAction: []UserHealth{}}
	h.Store = u.probeStore(ctx)
	h.At = time.Now()
	now := h.At.UnixNano()
	u.mu.RLock()
	h.Users = len(u.users)
	for id, e := range u.users {
		s := e.healthState(now)
		h.States.add(s)
		if s == HealthInDoubt || s == HealthRevoked {
			uh := UserHealth{UserID: id, State: s}
			if err := e.src.revokedErr(); err != nil {
				uh.Error = (*err).Error()
			}
			if at := e.validatedAt.Load(); at > 0 {
				uh.ValidatedAt = time.Unix(0, at)
			}
			h.NeedAction = append(h.NeedAction, uh)
		}
	}
	u.mu.RUnlock()
	slices.SortFunc(h.NeedAction, func(a, b UserHealth) int { return strings.Compare(a.UserID, b.UserID) })
	if opts.Lapsing > 0 {
		h.Lapsing = u.lapsingHealth(ctx, opts.Lapsing)
	}
	return h
}

// UserCounts are a registry's users counted from memory: what a gauge reads.
type UserCounts struct {
	// Users is the number of registered users: the sum of States.
	Users int
	// States counts the users by state, each once, in the most urgent of its states, as
	// [UserTokens.Health] does.
	States HealthCounts
	// PendingPairs and PendingMarks split the users of States.Pending: those whose source holds
	// a refreshed pair the store has not taken, and those whose source holds a spending mark to
	// take back.
	PendingPairs, PendingMarks int
	// Refreshing is the number of users whose renewal is under way.
	Refreshing int
}

// Counts returns the registry's users counted by state, from memory: no store read and no
// allocation, so that a metrics gauge can call it at every collection (10,000 users take tens of
// microseconds). It is safe to call at any time, also while Run runs.
func (u *UserTokens) Counts() UserCounts {
	var c UserCounts
	now := time.Now().UnixNano()
	u.mu.RLock()
	defer u.mu.RUnlock()
	c.Users = len(u.users)
	for _, e := range u.users {
		s := e.healthState(now)
		c.States.add(s)
		if s == HealthPending {
			if p := e.src.pendingPair(); p != nil && p.takesBackMark() {
				c.PendingMarks++
			} else {
				c.PendingPairs++
			}
		}
		if m := e.src.more.Load(); m != nil && m.refreshing.held() {
			c.Refreshing++
		}
	}
	return c
}

// healthState returns e's most urgent state at now (wall clock Unix nanoseconds); it makes
// nothing.
func (e *userEntry) healthState(now int64) HealthState {
	if err := e.src.revokedErr(); err != nil {
		if errors.Is(*err, ErrRefreshInDoubt) {
			return HealthInDoubt
		}
		return HealthRevoked
	}
	if e.src.pendingPair() != nil {
		return HealthPending
	}
	if f := e.src.backedOff(); f != nil && f.until.UnixNano() > now {
		return HealthBackingOff
	}
	if e.src.until.Load() <= now {
		return HealthIdle
	}
	return HealthFresh
}

// isRunning reports whether Run is running.
func (u *UserTokens) isRunning() bool {
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.running
}

// probeStore loads a key no user has, timed: an answer, even ErrTokenNotFound, says the store is
// reachable.
func (u *UserTokens) probeStore(ctx context.Context) StoreHealth {
	start := time.Now()
	_, err := u.store.Load(ctx, healthProbeKey)
	sh := StoreHealth{Latency: time.Since(start)}
	switch {
	case ctx.Err() != nil:
		sh.Error = fmt.Sprintf("twitchoauth: probe the store: %v", ctx.Err())
	case err == nil || errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenCorrupt):
		sh.Reachable = true
	default:
		sh.Error = fmt.Sprintf("twitchoauth: probe the store: %v", err)
	}
	return sh
}

// lapsingHealth reads every registered user's record, MaxInFlight at a time, and lists those whose
// public client's refresh token lapses within d.
func (u *UserTokens) lapsingHealth(ctx context.Context, d time.Duration) *LapsingHealth {
	lh := &LapsingHealth{Within: d, At: time.Now(), Users: []LapsingUser{}}
	if u.c.ClientSecret != "" {
		return lh // a confidential client's refresh tokens do not lapse
	}
	ids := u.Users()
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	u.inParts(ids, func(part []string) {
		for _, id := range part {
			var st *StoredToken
			err := ctx.Err()
			if err == nil {
				st, err = u.store.Load(ctx, id)
			}
			mu.Lock()
			switch {
			case errors.Is(err, ErrTokenNotFound):
				// Removed meanwhile.
			case err != nil:
				lh.Unread++
				if lh.Error == "" {
					lh.Error = fmt.Sprintf("twitchoauth: read a user's record: %v", err)
				}
			default:
				lh.Read++
				if at := refreshLapsesAt(st); st.RefreshToken != "" && (at.IsZero() || at.Before(deadline)) {
					lh.Users = append(lh.Users, LapsingUser{UserID: id, Expiry: at})
				}
			}
			mu.Unlock()
		}
	})
	slices.SortFunc(lh.Users, func(a, b LapsingUser) int { return strings.Compare(a.UserID, b.UserID) })
	return lh
}

// lapsingReuse is how long HealthHandler serves a lapsing read again, for the same window.
const lapsingReuse = time.Minute

// lapsingServed is lapsingHealth for HealthHandler, whose callers a program may not control: one
// read at a time for the registry, and a read served again for a minute to requests for the same
// window, also one cut short by the handler's time limit (it says how many records it did not
// read), but not one whose caller went away. A caller repeating ?lapsing= costs the store one read
// a minute, not one a request, however slow the store.
func (u *UserTokens) lapsingServed(ctx context.Context, d time.Duration) *LapsingHealth {
	if !u.lapsingTurn.tryLock() {
		if err := u.lapsingTurn.lock(ctx); err != nil {
			return u.lapsingBusy(d, err)
		}
	}
	defer u.lapsingTurn.unlock()
	if l := u.lapsingLast; l != nil && l.Within == d && time.Since(l.At) < lapsingReuse {
		return l
	}
	l := u.lapsingHealth(ctx, d)
	if !errors.Is(ctx.Err(), context.Canceled) {
		u.lapsingLast = l
	}
	return l
}

// lapsingBusy is lapsingServed's answer when another read did not end within its caller's time.
func (u *UserTokens) lapsingBusy(d time.Duration, err error) *LapsingHealth {
	u.mu.RLock()
	n := len(u.users)
	u.mu.RUnlock()
	return &LapsingHealth{Within: d, At: time.Now(), Users: []LapsingUser{}, Unread: n,
		Error: fmt.Sprintf("twitchoauth: another lapsing read is under way, and did not end in time: %v", err)}
}

// HealthHandler serves [UserTokens.Health] as JSON, for an admin page or a readiness probe. It
// answers GET only (405 otherwise), within 5 seconds of store reads. The status is 503 when the
// store is unreachable (this replica can neither refresh nor take up others' tokens, and a
// readiness probe should take it out of service), and 200 otherwise: users in doubt or whose
// grant is gone are listed in the body, not a 503, since no restart or other replica fixes them.
// ?lapsing=7d (days, or a Go duration such as 36h) also lists the users whose refresh token lapses
// within it, at a store read per user (see [HealthOptions]), one such read at a time, and each
// served again for a minute to requests for the same window (its Unread says what a read cut
// short at the time limit missed); a malformed value is a 400. The body holds no token, but it does hold user IDs: serve it to operators only.
func (u *UserTokens) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		var lapsing time.Duration
		if v := r.URL.Query().Get("lapsing"); v != "" {
			d, err := parseDays(v)
			if err != nil {
				http.Error(w, "twitchoauth: lapsing: want days (7d) or a duration (36h)", http.StatusBadRequest)
				return
			}
			lapsing = d
		}
		ctx, cancel := context.WithTimeout(r.Context(), healthProbeTimeout)
		defer cancel()
		h := u.Health(ctx, HealthOptions{})
		if lapsing > 0 {
			h.Lapsing = u.lapsingServed(ctx, lapsing)
		}
		body, err := json.Marshal(h)
		if err != nil {
			http.Error(w, "twitchoauth: encode health", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !h.Store.Reachable {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write(append(body, '\n'))
	})
}

// parseDays parses a positive duration in days ("7d") or Go's syntax ("36h").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 366 {
			return 0, errors.New("bad days")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("bad duration")
	}
	return d, nil
}
