package twitchoauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// auditWorld is a registry of users whose logins the fake issued, in a synctest bubble.
type auditWorld struct {
	*runBubble
	u       *UserTokens
	users   []string          // sorted
	refresh map[string]string // each user's last refresh token
	tokens  []string          // every access and refresh token issued
}

// newAuditWorld registers n users (ids(n)) with the fake and the registry, each logged in to the
// client with chat:read and chat:edit and holding the intent "chatbot:<id>". Must be called
// inside synctest.Test.
func newAuditWorld(t *testing.T, n int) *auditWorld {
	t.Helper()
	w := &auditWorld{runBubble: newRunBubble(t), users: ids(n), refresh: map[string]string{}}
	w.c.HelixBaseURL = "http://api.fake.invalid/helix/"
	for _, id := range w.users {
		w.fake.AddUser(id, "user"+id, "")
		w.login(t, id, []string{"chatbot:" + id}, "chat:read", "chat:edit")
	}
	w.u = NewUserTokens(w.c, w.store)
	w.sync(t)
	return w
}

// login stores a new login of user id with these scopes and intents, as another replica's add
// would have; the registry learns of it at the next sync.
func (w *auditWorld) login(t *testing.T, id string, intents []string, scopes ...string) {
	t.Helper()
	access, refresh := w.fake.IssueToken(w.c.ClientID, id, scopes, 0)
	w.tokens = append(w.tokens, access, refresh)
	w.refresh[id] = refresh
	st := &StoredToken{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(4 * time.Hour),
		Scopes: toScopes(scopes), UserID: id, Login: "user" + id, ClientID: w.c.ClientID, Intents: intents}
	if err := w.store.Save(t.Context(), id, st); err != nil {
		t.Fatal(err)
	}
}

// addUnknown registers a user the fake does not know, as a deleted account would be.
func (w *auditWorld) addUnknown(t *testing.T, id string) {
	t.Helper()
	st := &StoredToken{AccessToken: "access" + id, RefreshToken: "refresh" + id, Expiry: time.Now().Add(4 * time.Hour),
		UserID: id, Login: "gone" + id, ClientID: w.c.ClientID, Intents: []string{"chat"}}
	if err := w.store.Save(t.Context(), id, st); err != nil {
		t.Fatal(err)
	}
	w.users = append(w.users, id)
	slices.Sort(w.users)
	w.sync(t)
}

func (w *auditWorld) sync(t *testing.T) {
	t.Helper()
	if err := w.u.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := w.u.Users(); !slices.Equal(got, w.users) {
		t.Fatalf("registered %v, want %v", got, w.users)
	}
}

// asked returns the user IDs of each Get Authorization By User the fake got, and when.
func (w *auditWorld) asked() (ids [][]string, at []time.Time) {
	for _, r := range w.fake.Requests() {
		if r.Endpoint == faketwitch.AuthorizationsEndpoint {
			ids, at = append(ids, r.Query["user_id"]), append(at, r.At)
		}
	}
	return ids, at
}

// batchSizes returns how many users each request named.
func batchSizes(asked [][]string) []int {
	out := make([]int, len(asked))
	for i, a := range asked {
		out[i] = len(a)
	}
	return out
}

// chatScopes is the IntentScopes of the tests: "chat" and "chatbot:<id>" need chat:read and
// chat:edit; "mod" needs chat:read and moderator:manage:banned_users.
func chatScopes(intent string) []Scope {
	switch {
	case intent == "mod":
		return []Scope{ScopeChatRead, ScopeModeratorManageBannedUsers}
	case intent == "chat", strings.HasPrefix(intent, "chatbot:"):
		return []Scope{ScopeChatRead, ScopeChatEdit}
	}
	return nil
}

// TestUserTokensAudit: 25 users are checked in 3 calls of 10, 10 and 5 users; the audit reports
// the user whose grant lacks scopes their intents need, the user who revoked the app and the
// user Twitch does not know, and nobody else; and its result's JSON holds no token.
func TestUserTokensAudit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newAuditWorld(t, 24)
		lacking, revoked, unknown := w.users[4], w.users[12], "999999"
		// lacking logged in again for the moderator intent, granting only chat:read, and the first
		// login is gone.
		w.fake.RevokeGrant(w.refresh[lacking])
		access, refresh := w.fake.IssueToken(w.c.ClientID, lacking, []string{"chat:read"}, 0)
		w.tokens = append(w.tokens, access, refresh)
		if _, err := w.u.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}, "mod"); err != nil {
			t.Fatal(err)
		}
		w.fake.RevokeGrant(w.refresh[revoked])
		w.addUnknown(t, unknown)
		app := NewAppTokenSource(w.c)
		appTok, err := app.TokenContext(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		w.fake.ResetRequests()

		res, err := w.u.Audit(t.Context(), AuditOptions{App: app, IntentScopes: chatScopes})
		if err != nil {
			t.Fatal(err)
		}
		asked, _ := w.asked()
		if sizes := batchSizes(asked); !slices.Equal(sizes, []int{10, 10, 5}) {
			t.Errorf("calls asked for %v users, want 10, 10 and 5", sizes)
		}
		if all := slices.Concat(asked...); !slices.Equal(all, w.users) {
			t.Errorf("asked for %v, want every user once: %v", all, w.users)
		}
		want := []AuditFinding{
			{UserID: lacking, Login: "user" + lacking, Problem: AuditMissingScopes,
				Intents: []string{"chatbot:" + lacking, "mod"}, Missing: []Scope{ScopeChatEdit, ScopeModeratorManageBannedUsers}},
			{UserID: revoked, Login: "user" + revoked, Problem: AuditNotAuthorized, Intents: []string{"chatbot:" + revoked}},
			{UserID: unknown, Problem: AuditUnknownUser, Intents: []string{"chat"}},
		}
		if !res.Done || res.Cursor != "" || res.Checked != 25 || res.Calls != 3 || res.Error != "" || !slices.EqualFunc(res.Findings, want, equalFinding) {
			t.Errorf("result %+v\nwant Done, 25 checked in 3 calls, findings %+v", res, want)
		}
		out, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range append(w.tokens, appTok.AccessToken) {
			if strings.Contains(string(out), tok) {
				t.Errorf("the result's JSON holds a token (not printed here)")
			}
		}
		if !strings.Contains(string(out), `"problem":"missing_scopes","intents":["chatbot:`+lacking+`","mod"],"missing_scopes":["chat:edit","moderator:manage:banned_users"]`) {
			t.Errorf("JSON %s", out)
		}

		// Without IntentScopes, no scope is checked.
		res, err = w.u.Audit(t.Context(), AuditOptions{App: app})
		if err != nil || len(res.Findings) != 2 || res.Findings[0].UserID != revoked || res.Findings[1].UserID != unknown {
			t.Errorf("without IntentScopes: %+v, %v; want the revoked and the unknown user only", res.Findings, err)
		}
	})
}

// TestUserTokensAuditKeepsAppToken: audits that bring no app token source share the registry's
// own, so that an audit run every hour asks Twitch for one app token, not one each time.
func TestUserTokensAuditKeepsAppToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newAuditWorld(t, 3)
		for range 3 {
			if res, err := w.u.Audit(t.Context(), AuditOptions{}); err != nil || !res.Done {
				t.Fatalf("Audit: %+v, %v", res, err)
			}
		}
		if n := w.fake.CountGrant("client_credentials"); n != 1 {
			t.Errorf("three audits asked for %d app tokens; want 1", n)
		}
	})
}

func equalFinding(a, b AuditFinding) bool {
	return a.UserID == b.UserID && a.Login == b.Login && a.Problem == b.Problem &&
		slices.Equal(a.Intents, b.Intents) && slices.Equal(a.Missing, b.Missing)
}

// TestUserTokensAuditPaced: the audit's calls start Interval apart, by the clock, and the default
// is 250 milliseconds.
func TestUserTokensAuditPaced(t *testing.T) {
	for _, tc := range []struct {
		interval, want time.Duration
	}{{0, 250 * time.Millisecond}, {3 * time.Second, 3 * time.Second}} {
		t.Run(tc.want.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newAuditWorld(t, 35)
				app := NewAppTokenSource(w.c)
				if _, err := app.TokenContext(t.Context()); err != nil {
					t.Fatal(err)
				}
				w.fake.ResetRequests()
				start := time.Now()
				res, err := w.u.Audit(t.Context(), AuditOptions{App: app, Interval: tc.interval})
				if err != nil || !res.Done || res.Calls != 4 {
					t.Fatalf("%+v, %v; want Done in 4 calls", res, err)
				}
				_, at := w.asked()
				for i, a := range at {
					if want := start.Add(time.Duration(i) * tc.want); !a.Equal(want) {
						t.Errorf("call %d at %v, want %v", i, a.Sub(start), want.Sub(start))
					}
				}
			})
		})
	}
}

// TestUserTokensAuditWaitsOut429: a call Twitch answers 429 is sent again once the wait Twitch
// asked for is over, not before, and the audit goes on to the end; a ctx that ends during the
// wait ends it then.
func TestUserTokensAuditWaitsOut429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newAuditWorld(t, 25)
		app := NewAppTokenSource(w.c)
		if _, err := app.TokenContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		w.fake.ResetRequests()
		w.fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Pass: true, Count: 1})
		w.fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Status: http.StatusTooManyRequests, Count: 1,
			Body: `{"error":"Too Many Requests","status":429,"message":"Too Many Requests"}`, Header: map[string]string{"Retry-After": "40"}})
		start := time.Now()
		res, err := w.u.Audit(t.Context(), AuditOptions{App: app})
		if err != nil || !res.Done || res.Checked != 25 || res.Calls != 4 {
			t.Fatalf("%+v, %v; want Done, 25 users checked in 4 calls", res, err)
		}
		asked, at := w.asked()
		if !slices.Equal(asked[1], asked[2]) {
			t.Errorf("after the 429 the audit asked for %v, want the refused %v again", asked[2], asked[1])
		}
		if d := at[2].Sub(at[1]); d < 40*time.Second {
			t.Errorf("the refused call was sent again %v after the 429, want at least the 40s Twitch asked for", d)
		}
		if d := at[2].Sub(start); d > 41*time.Second {
			t.Errorf("the refused call was sent again %v after the start, want soon after the 40s", d)
		}

		// A ctx that ends during the wait ends the audit then, with the cursor where it was.
		w.fake.ResetRequests()
		w.fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Status: http.StatusTooManyRequests, Count: 1,
			Body: `{"error":"Too Many Requests","status":429,"message":"Too Many Requests"}`, Header: map[string]string{"Retry-After": "40"}})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		start = time.Now()
		res, err = w.u.Audit(ctx, AuditOptions{App: app})
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 10*time.Second || res.Calls != 1 || res.Checked != 0 {
			t.Errorf("%+v, %v after %v; want ctx's error at its deadline, 10s, after the one refused call", res, err, time.Since(start))
		}
	})
}

// TestUserTokensAuditGivesUp: a call that keeps failing is sent 5 times, with a growing backoff,
// then the audit stops with the error and a cursor; a refusal that waiting cannot cure (an app
// token Twitch refuses) stops it at the first call.
func TestUserTokensAuditGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newAuditWorld(t, 15)
		app := NewAppTokenSource(w.c)
		if _, err := app.TokenContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		w.fake.ResetRequests()
		w.fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Pass: true, Count: 1})
		w.fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Status: http.StatusBadGateway,
			Body: `{"error":"Bad Gateway","status":502,"message":"Bad Gateway"}`})
		res, err := w.u.Audit(t.Context(), AuditOptions{App: app, Interval: time.Millisecond})
		var ae *APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusBadGateway || res.Error != err.Error() {
			t.Fatalf("error %v (result's %q), want the 502", err, res.Error)
		}
		if res.Done || res.Checked != 10 || res.Calls != 6 || res.Cursor != w.users[9] {
			t.Errorf("%+v; want 10 users checked, 1+5 calls, the cursor at the 10th", res)
		}
		_, at := w.asked()
		var gaps []time.Duration
		for i := 2; i < len(at); i++ {
			gaps = append(gaps, at[i].Sub(at[i-1]))
		}
		if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}; !slices.Equal(gaps, want) {
			t.Errorf("retries %v apart, want %v", gaps, want)
		}

		// A user token where an app token belongs: refused at once, with no token in the error.
		w.fake.ClearFaults()
		w.fake.ResetRequests()
		user, _ := w.fake.IssueToken(w.c.ClientID, w.users[0], nil, 0)
		res, err = w.u.Audit(t.Context(), AuditOptions{App: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: user})})
		if !errors.Is(err, ErrInvalidToken) || res.Calls != 1 || res.Checked != 0 || res.Cursor != "" {
			t.Errorf("%+v, %v; want one call, refused with an error that Is ErrInvalidToken", res, err)
		}
		if strings.Contains(err.Error(), user) || strings.Contains(res.Error, user) {
			t.Errorf("the error's text holds the token sent (not printed here)")
		}
	})
}

// TestUserTokensAuditResumes: an audit whose ctx ends during a call stops with ctx's error and a
// cursor after the users it finished; another audit from that cursor checks the others, and
// none of those again; together they find what one audit would. MaxCalls stops an audit the
// same way, without an error.
func TestUserTokensAuditResumes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newAuditWorld(t, 25)
		revoked := []string{w.users[3], w.users[17]}
		for _, id := range revoked {
			w.fake.RevokeGrant(w.refresh[id])
		}
		app := NewAppTokenSource(w.c)
		if _, err := app.TokenContext(t.Context()); err != nil {
			t.Fatal(err)
		}
		w.fake.ResetRequests()
		// The second call hangs until the audit's ctx ends.
		w.fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Pass: true, Count: 1})
		w.fake.Fail(faketwitch.AuthorizationsEndpoint, faketwitch.Fault{Hang: true, Count: 1})
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		first, err := w.u.Audit(ctx, AuditOptions{App: app})
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || first.Done || first.Checked != 10 || first.Cursor != w.users[9] {
			t.Fatalf("%+v, %v; want 10 users checked, the cursor at the 10th, and ctx's error", first, err)
		}
		if len(first.Findings) != 1 || first.Findings[0].UserID != revoked[0] {
			t.Errorf("findings %+v, want %s's", first.Findings, revoked[0])
		}

		w.fake.ResetRequests()
		second, err := w.u.Audit(t.Context(), AuditOptions{App: app, Cursor: first.Cursor})
		if err != nil || !second.Done || second.Checked != 15 || second.Cursor != "" {
			t.Fatalf("%+v, %v; want the other 15 users checked, Done", second, err)
		}
		asked, _ := w.asked()
		if all := slices.Concat(asked...); !slices.Equal(all, w.users[10:]) {
			t.Errorf("the resumed audit asked for %v, want only the users after the cursor: %v", all, w.users[10:])
		}
		if len(second.Findings) != 1 || second.Findings[0].UserID != revoked[1] {
			t.Errorf("findings %+v, want %s's", second.Findings, revoked[1])
		}

		// MaxCalls: one call, then a cursor and no error.
		w.fake.ResetRequests()
		res, err := w.u.Audit(t.Context(), AuditOptions{App: app, MaxCalls: 1, Cursor: w.users[2]})
		if err != nil || res.Done || res.Calls != 1 || res.Checked != 10 || res.Cursor != w.users[12] || res.Error != "" {
			t.Errorf("%+v, %v; want 10 users after the cursor checked in one call, then a cursor at the 13th", res, err)
		}
		if asked, _ := w.asked(); len(asked) != 1 || asked[0][0] != w.users[3] {
			t.Errorf("asked for %v, want one call from the user after the cursor", asked)
		}
	})
}
