package twitchoauth

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// A registry's users checked against what Twitch says each granted the app:
// [UserTokens.Audit], on Get Authorization By User ([Client.UserAuthorizations]).

// Defaults of [AuditOptions].
const (
	// defaultAuditInterval spaces the audit's calls: 4 a second, 240 of the 800 points a minute
	// Twitch gives an app token, so that the app's other Helix calls keep most of them.
	defaultAuditInterval = 250 * time.Millisecond
	// maxAuditAttempts is how many times one batch is sent while Twitch answers 429, 5xx or
	// nothing, before the audit stops with the error.
	maxAuditAttempts = 5
)

// AuditProblem is what [UserTokens.Audit] found wrong with a user.
type AuditProblem string

// The problems an audit reports.
const (
	// AuditMissingScopes: the user's grant lacks a scope one of their intents needs: they must log
	// in again, asked for those scopes, before the program can do what the intent is for.
	AuditMissingScopes AuditProblem = "missing_scopes"
	// AuditNotAuthorized: the user no longer authorizes the app (they disconnected it, or changed
	// their password): their stored token is dead, and they must log in again.
	AuditNotAuthorized AuditProblem = "not_authorized"
	// AuditUnknownUser: Twitch knows no user with this ID (a deleted or suspended account): the
	// registry holds a user who can never log in again; remove them.
	AuditUnknownUser AuditProblem = "unknown_user"
)

// AuditOptions are the options of [UserTokens.Audit]. The zero value checks every user, with the
// registry's own [AppTokenSource], 4 calls a second at most, and reports only gone grants and unknown users.
type AuditOptions struct {
	// App is the source of the app access token the audit calls Twitch with. Defaults to an
	// [AppTokenSource] of the registry's Client (which needs its ClientSecret), made by the first
	// audit and kept for the registry's later ones; pass the program's own to share its token.
	App oauth2.TokenSource
	// IntentScopes returns the scopes an intent needs, e.g. [ScopeChatRead] and [ScopeChatEdit]
	// for "chat"; nil for an intent that needs none. A user whose grant lacks a scope one of their
	// intents needs is reported. Nil checks no scope.
	IntentScopes func(intent string) []Scope
	// Interval is the least time between the starts of two calls to Twitch (each checks up to
	// [MaxAuthorizationUsers] users). Defaults to 250 milliseconds: 4 calls, 40 users, a second.
	Interval time.Duration
	// MaxCalls caps the calls this audit sends, retries included; past it the audit stops, Done
	// false, for a later call to resume at its Cursor. Zero or less: no cap.
	MaxCalls int
	// Cursor resumes an audit that stopped: the Cursor of its result. Only the users whose ID
	// sorts after it are checked. "" starts from the first user.
	Cursor string
}

// AuditResult is what an audit found. It holds no token: an operator may print it or serve it as
// JSON. User IDs and logins are personal data, listed only for the users who need action.
type AuditResult struct {
	// Started and Finished are when the audit began and ended.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Checked is the number of users this audit checked (those before its options' Cursor are not
	// counted); Calls the number of calls it sent to Twitch, retries included.
	Checked int `json:"checked"`
	Calls   int `json:"calls"`
	// Done says every user after the options' Cursor was checked.
	Done bool `json:"done"`
	// Cursor is where to resume, as [AuditOptions].Cursor, when the audit stopped before Done:
	// the last user ID checked (the options' Cursor when none was). "" when Done.
	Cursor string `json:"cursor,omitempty"`
	// Error is why the audit stopped before Done: the error Audit returned; "" otherwise.
	Error string `json:"error,omitempty"`
	// Findings are the users who need action, sorted by user ID; empty, not nil, when there are
	// none. The findings of audits resumed one after another add up: each checks other users.
	Findings []AuditFinding `json:"findings"`
}

// AuditFinding is a user who needs action.
type AuditFinding struct {
	UserID string `json:"user_id"`
	// Login is the user's login name as Twitch gave it; "" for an unknown user.
	Login   string       `json:"user_login,omitempty"`
	Problem AuditProblem `json:"problem"`
	// Intents are the user's intents: with AuditMissingScopes, those that need a scope the grant
	// lacks; otherwise all of them, none of which works.
	Intents []string `json:"intents,omitempty"`
	// Missing are the scopes those intents need that the grant lacks, sorted; set only with
	// AuditMissingScopes.
	Missing []Scope `json:"missing_scopes,omitempty"`
}

// Audit asks Twitch what every registered user has granted the app (Get Authorization By User,
// [MaxAuthorizationUsers] users a call, in the order of their IDs) and reports those who need
// action: a grant that lacks a scope one of their intents needs ([AuditOptions].IntentScopes), a
// grant the user has withdrawn, an ID Twitch does not know. It changes nothing: acting on the
// findings (asking a user to log in again, [UserTokens.Remove]) is the caller's.
//
// It is paced: its calls start at least opts.Interval apart, one at a time. A call Twitch answers
// with 429 is sent again once Twitch's wait is over (Retry-After or Ratelimit-Reset), and one
// that got a 5xx or no answer after a backoff; after 5 failed attempts of one call the audit
// stops with the error. Any other refusal (an app token Twitch refuses, a 400) stops it at once.
//
// It is resumable: when ctx ends, Twitch's errors stop it or opts.MaxCalls is reached, the result
// holds what was found so far, Done false, and a Cursor from which another audit checks the users
// not yet checked, and none of the others. The users are those registered as it starts; one
// added later, or under an ID that sorts before the cursor, is checked by the next full audit.
// The returned result is never nil; the error is ctx's or Twitch's, and nil when the audit is
// Done or stopped at MaxCalls.
func (u *UserTokens) Audit(ctx context.Context, opts AuditOptions) (*AuditResult, error) {
	res := &AuditResult{Started: time.Now(), Cursor: opts.Cursor, Findings: []AuditFinding{}}
	stop := func(err error) (*AuditResult, error) {
		res.Finished = time.Now()
		if err != nil {
			err = fmt.Errorf("twitchoauth: audit: %w", err)
			res.Error = err.Error()
		}
		return res, err
	}
	ids := u.Users()
	if opts.Cursor != "" {
		ids = ids[sortedAfter(ids, opts.Cursor):]
	}
	app := opts.App
	if app == nil {
		app = u.appTokens()
	}
	interval := cmp.Or(max(opts.Interval, 0), defaultAuditInterval)
	var next time.Time // when the next call may start
	for len(ids) > 0 {
		batch := ids[:min(len(ids), MaxAuthorizationUsers)]
		var as []UserAuthorization
		for attempt := 1; ; attempt++ {
			if opts.MaxCalls > 0 && res.Calls >= opts.MaxCalls {
				return stop(nil)
			}
			if err := sleep(ctx, time.Until(next), nil); err != nil {
				return stop(err)
			}
			res.Calls++
			var err error
			as, err = u.c.authorizationBatch(ctx, app, batch)
			next = time.Now().Add(interval)
			if err == nil {
				break
			}
			if !isTransient(ctx, err) || attempt == maxAuditAttempts {
				return stop(err)
			}
			next = latest(next, time.Now().Add(backoff(attempt, retryAfterOf(err))))
		}
		for _, a := range as {
			if f, ok := u.auditFinding(a, opts.IntentScopes); ok {
				res.Findings = append(res.Findings, f)
			}
		}
		res.Checked += len(batch)
		res.Cursor = batch[len(batch)-1]
		ids = ids[len(batch):]
	}
	res.Done, res.Cursor = true, ""
	return stop(nil)
}

// sortedAfter returns the index of the first of ids (sorted) that sorts after cursor.
func sortedAfter(ids []string, cursor string) int {
	i, found := slices.BinarySearch(ids, cursor)
	if found {
		i++
	}
	return i
}

// auditFinding returns what is wrong with a's user, if anything. A user removed from the
// registry since the audit began is passed over.
func (u *UserTokens) auditFinding(a UserAuthorization, intentScopes func(string) []Scope) (AuditFinding, bool) {
	u.mu.RLock()
	e := u.users[a.UserID]
	var intents []string
	if e != nil {
		intents = slices.Clone(e.intents)
	}
	u.mu.RUnlock()
	if e == nil {
		return AuditFinding{}, false
	}
	f := AuditFinding{UserID: a.UserID, Login: a.Login, Intents: intents}
	switch {
	case a.Unknown:
		f.Problem = AuditUnknownUser
	case !a.HasAuthorized:
		f.Problem = AuditNotAuthorized
	case intentScopes == nil:
		return AuditFinding{}, false
	default:
		f.Problem, f.Intents = AuditMissingScopes, nil
		for _, in := range intents {
			lacking := false
			for _, sc := range intentScopes(in) {
				if !slices.Contains(a.Scopes, sc) {
					lacking = true
					if !slices.Contains(f.Missing, sc) {
						f.Missing = append(f.Missing, sc)
					}
				}
			}
			if lacking {
				f.Intents = append(f.Intents, in)
			}
		}
		if len(f.Missing) == 0 {
			return AuditFinding{}, false
		}
		slices.Sort(f.Missing)
	}
	return f, true
}

// appTokens returns the registry's own app token source, made on first use: every audit that
// brings none uses it, so that audits run hourly ask Twitch for one app token, not one each.
func (u *UserTokens) appTokens() *AppTokenSource {
	u.appOnce.Do(func() { u.app = NewAppTokenSource(u.c) })
	return u.app
}
