package twitchoauth_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	t "github.com/twitchoauth/twitchoauth"
	tt "github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// contract pins every name and signature of the public API contract (shared/design/API.md), which
// programs outside this repository compile against: a rename or reshape fails this file's build.
// It is compiled with the tests, never run.
var _ = func() {
	_ = t.DefaultAuthBaseURL + t.DefaultRedirectURL
	var _ int = t.DefaultPort
	c := &t.Client{ClientID: "", ClientSecret: "", AuthBaseURL: "", HTTPClient: (*http.Client)(nil), Logger: (*slog.Logger)(nil)}
	var _ func(string, string) *t.Client = t.NewClient
	var _ func(context.Context, string) (*oauth2.Token, error) = c.RefreshAccessToken
	var _ func(context.Context, string) (*t.Validation, error) = c.ValidateToken
	var _ func(context.Context, string) (*t.UserInfo, error) = c.GetUserInfo
	var _ func(context.Context, string) error = c.RevokeToken
	var _ func(context.Context) (*oauth2.Token, error) = c.AppAccessToken
	var _ func(*t.Client) = t.Option(nil)
	var _ func(*http.Client) t.Option = t.WithHTTPClient
	var _ func(string) t.Option = t.WithAuthBaseURL
	var _ func(context.Context, string, string, string, ...t.Option) (*oauth2.Token, error) = t.RefreshAccessToken
	var _ func(context.Context, string, ...t.Option) (*t.Validation, error) = t.ValidateToken
	var _ func(context.Context, string, ...t.Option) (*t.UserInfo, error) = t.GetUserInfo
	var _ func(context.Context, string, string, ...t.Option) error = t.RevokeToken
	_ = t.Validation{ClientID: "", Login: "", UserID: "", Scopes: []t.Scope{}, ExpiresIn: time.Duration(0)}
	_ = t.UserInfo{Subject: "", PreferredUsername: "", Email: "", EmailVerified: false, Picture: "", Raw: map[string]any{}}
	e := &t.APIError{Endpoint: "", StatusCode: 0, Message: "", ErrorCode: ""}
	var _ func() string = e.Error
	var _ func(error) bool = e.Is
	_ = []error{t.ErrInvalidRefreshToken, t.ErrUnauthorized, t.ErrInvalidToken, t.ErrMissingScope,
		t.ErrAccessDenied, t.ErrDeviceCodeExpired, t.ErrFlowNotStarted, t.ErrStopped}
	_ = t.MissingScopeError{Missing: []t.Scope{}}
	_ = []t.Scope{t.ScopeChatRead, t.ScopeAnalyticsReadExtension, t.ScopeModeratorManageSuspiciousUsers}
	var _ func() []t.Scope = t.AllScopes
	var _ func([]t.Scope) string = t.BuildScope
	var _ func(string) []t.Scope = t.ParseScopes
	var _ func(*oauth2.Token) []t.Scope = t.TokenScopes
	a := &t.UserAuthenticator{Scopes: nil, ForceVerify: false, URL: "", Host: "", Port: 0, State: "", Document: "",
		OpenBrowser: func(url string) error { return nil }}
	var _ func(*t.Client, []t.Scope) *t.UserAuthenticator = t.NewUserAuthenticator
	var _ func() string = a.AuthURL
	var _ func(context.Context, ...t.AuthenticateOption) (*oauth2.Token, error) = a.Authenticate
	var _ func() = a.Stop
	var _ func(context.Context, string) (string, error) = a.MockAuthenticate
	var _ func(string) t.AuthenticateOption = t.WithUserToken
	var _ func() t.AuthenticateOption = t.WithoutBrowser
	var _ func(func(ctx context.Context, authURL string) error) t.AuthenticateOption = t.WithAuthURLCallback
	var _ func(*t.Client, []t.Scope) *t.CodeFlow = t.NewCodeFlow
	f := &t.CodeFlow{}
	var _ func(context.Context) (string, string, error) = f.GetCode
	var _ func(context.Context) (*oauth2.Token, error) = f.WaitForAuthComplete
	h := &t.UserAuthenticationStorageHelper{StoragePath: "",
		AuthGenerator: func(ctx context.Context, c *t.Client, scopes []t.Scope) (*oauth2.Token, error) { return nil, nil }}
	var _ func(*t.Client, []t.Scope) *t.UserAuthenticationStorageHelper = t.NewUserAuthenticationStorageHelper
	var _ func(context.Context) (*t.UserTokenSource, error) = h.Bind
	var _ func(*t.Client, *oauth2.Token, func(*oauth2.Token) error) *t.UserTokenSource = t.NewUserTokenSource
	var _ oauth2.TokenSource = (*t.UserTokenSource)(nil)

	// Accepted into the contract after the first build.
	_ = t.DefaultStoragePath
	var _ time.Duration = t.DefaultLockTTL
	var store t.TokenStore = &t.FileStore{Path: ""}
	var _ func(context.Context, string) (*t.StoredToken, error) = store.Load
	var _ func(context.Context, string, *t.StoredToken) error = store.Save
	var _ func(context.Context, string, time.Duration) (func() error, error) = store.Lock
	_ = t.StoredToken{AccessToken: "", RefreshToken: "", Expiry: time.Time{}, Scopes: []t.Scope{}, UserID: "", Login: "", ClientID: ""}
	var _ func([]byte) (*t.StoredToken, error) = t.DecodeStoredToken
	_ = []error{t.ErrTokenNotFound, t.ErrTokenCorrupt}
	var _ func(*t.Client, t.TokenStore, string, *oauth2.Token) *t.UserTokenSource = t.NewStoreTokenSource
	s := &t.UserTokenSource{}
	var _ func(context.Context) (*oauth2.Token, error) = s.TokenContext
	var _ func(context.Context, *oauth2.Token) (*oauth2.Token, error) = s.ForceRefresh
	var _ func() *http.Client = s.HTTPClient
	var _ func(context.Context, time.Duration) error = s.KeepValidated
	var _ func() bool = (&t.Validation{}).IsUserToken
	var _ func() time.Time = f.ExpiresAt
	var _ func() time.Duration = f.Interval
	_ = t.CodeFlow{Scopes: []t.Scope{}}
	_ = t.UserAuthenticationStorageHelper{Store: store, StoreKey: "", LockTTL: time.Duration(0)}

	// The token lifecycle.
	var _ func(*oauth2.Token) = s.SetToken
}

// The API of package twitchoauthtest, which other programs' tests compile against, pinned the same
// way.
var _ = func() {
	_ = tt.ClientID + tt.ClientSecret + tt.PublicClientID + tt.UserID + tt.UserLogin
	var _ func(testing.TB) *tt.Server = tt.NewServer
	var _ func() *tt.Server = tt.New
	s := &tt.Server{URL: ""}
	var _ func() = s.Close
	var _ func() *t.Client = s.Client
	var _ func() *t.Client = s.PublicClient
	var _ func(string, string) = s.AddUser
	var _ func(string, string) = s.AuthorizeAs
	var _ func(bool) = s.DenyAuthorize
	var _ func(string) error = s.OpenBrowser
	var _ func(string) = s.AddRedirectURL
	var _ func(string) error = s.ApproveDevice
	var _ func(string) error = s.DenyDevice
	var _ func(string, ...t.Scope) *oauth2.Token = s.IssueUserToken
	var _ func(string) = s.Expire
	var _ func() = s.ExpireAll
	var _ func(string) = s.Revoke
	var _ func(time.Duration) = s.Advance
	var _ func(string, int, int) = s.Fail
	var _ func(string, time.Duration, int) = s.Delay
	var _ func(string, int) = s.Hang
	var _ func() = s.ClearFaults
	var _ func(string) []tt.Request = s.Requests
	_ = tt.Request{Endpoint: "", Method: "", Query: url.Values{}, Form: url.Values{}, Authorization: ""}
	var _ func(http.Handler, ...t.Scope) http.Handler = s.RequireToken
}

// The web login ("Sign in with Twitch"), pinned the same way.
var _ = func() {
	wl := &t.WebLogin{Scopes: []t.Scope{}, RedirectURL: "", OpenID: false, Claims: []string{}, ForceVerify: false,
		OnLogin: func(w http.ResponseWriter, r *http.Request, res *t.WebLoginResult) {},
		OnError: func(w http.ResponseWriter, r *http.Request, err error) {}, Users: (*t.UserTokens)(nil), Intents: []string{}}
	var _ func(*t.Client, []t.Scope, string, []byte) *t.WebLogin = t.NewWebLogin
	var _ func() http.Handler = wl.LoginHandler
	var _ func() http.Handler = wl.CallbackHandler
	_ = t.WebLoginResult{Token: (*oauth2.Token)(nil), Validation: (*t.Validation)(nil), Claims: (*t.IDTokenClaims)(nil), ReturnTo: ""}
	var _ func(context.Context, string, string) (*t.IDTokenClaims, error) = (&t.Client{}).VerifyIDToken
	_ = t.IDTokenClaims{Subject: "", PreferredUsername: "", Email: "", EmailVerified: false, Picture: "", Issuer: "",
		Audience: []string{}, IssuedAt: time.Time{}, Expiry: time.Time{}, Nonce: "", Raw: map[string]any{}}
	_ = []error{t.ErrInvalidState, t.ErrInvalidIDToken}
	var _ int = t.MinCookieKeyLen
	_ = t.ReturnToParam
	var _ []string = t.DefaultClaims
	srv := &tt.Server{}
	var _ func(tt.IDTokenFault) = srv.FailIDToken
	var _ func() = srv.RotateKey
	_ = []tt.IDTokenFault{tt.IDTokenWrongKey, tt.IDTokenUnknownKey, tt.IDTokenExpired, tt.IDTokenFutureIssued,
		tt.IDTokenWrongAudience, tt.IDTokenWrongIssuer, tt.IDTokenNoNonce, tt.IDTokenWrongNonce, tt.IDTokenWrongSubject,
		tt.IDTokenAlgNone, tt.IDTokenHS256, tt.IDTokenMissing}
}

// Many users, and the app token.
var _ = func() {
	u := &t.UserTokens{ValidateEvery: time.Duration(0), MaxInFlight: 0,
		OnRefresh: func(userID string, tok *oauth2.Token) {}, OnRevoked: func(userID string, err error) {}}
	var _ func(*t.Client, t.TokenStore) *t.UserTokens = t.NewUserTokens
	var _ func(context.Context, *oauth2.Token, ...string) (*t.Validation, error) = u.AddUserForToken
	var _ func(context.Context, string, string, ...string) (*t.Validation, error) = u.AddUserForCode
	var _ func(string) (*t.UserTokenSource, error) = u.Source
	var _ func(string) (*t.UserTokenSource, error) = u.SourceForIntent
	var _ func(context.Context, string, bool) error = u.Remove
	var _ func() []string = u.Users
	var _ func(context.Context) error = u.Run
	var store t.TokenStore = &t.FileStore{}
	var _ func(context.Context, string) error = store.Delete
	var _ t.KeyLister = &t.FileStore{}
	a := &t.AppTokenSource{}
	var _ func(*t.Client) *t.AppTokenSource = t.NewAppTokenSource
	var _ func() (*oauth2.Token, error) = a.Token
	var _ func(context.Context) (*oauth2.Token, error) = a.TokenContext
	var _ func() *http.Client = a.HTTPClient
	var _ oauth2.TokenSource = a
	var _ func(*oauth2.Token) string = t.IRCPassword
}

// Nothing stranded: the registry's lock ttl, a doubt settled, and a source's end; replicas that
// hear at once, and readers; one record limit, and keys quoted short; the registry's health.
var _ = func() {
	u := &t.UserTokens{LockTTL: time.Duration(0), OnRecovered: func(userID string) {},
		ReadOnly: false, ReaderWait: time.Duration(0), KeepFresh: false}
	_ = u
	var _ t.ChangeWatcher = &t.FileStore{}
	var _ error = t.ErrNoFreshToken
	var _ func(string) string = t.QuoteKey
	var _ int = t.MaxStoredTokenSize
	s := &t.UserTokenSource{}
	var _ func() <-chan struct{} = s.Done
	var _ func() error = s.Err
	var _ func(context.Context, t.HealthOptions) *t.Health = u.Health
	var _ func() http.Handler = u.HealthHandler
	_ = t.HealthOptions{Lapsing: time.Duration(0)}
	_ = t.Health{At: time.Time{}, Running: false, Watching: false, ReadOnly: false,
		Store: t.StoreHealth{Reachable: false, Latency: time.Duration(0), Error: ""}, Users: 0,
		States:     t.HealthCounts{InDoubt: 0, Revoked: 0, Pending: 0, BackingOff: 0, Idle: 0, Fresh: 0},
		NeedAction: []t.UserHealth{{UserID: "", State: t.HealthInDoubt, Error: "", ValidatedAt: time.Time{}}},
		Lapsing: &t.LapsingHealth{Within: time.Duration(0), At: time.Time{}, Read: 0, Unread: 0, Error: "",
			Users: []t.LapsingUser{{UserID: "", Expiry: time.Time{}}}}}
	_ = []t.HealthState{t.HealthInDoubt, t.HealthRevoked, t.HealthPending, t.HealthBackingOff, t.HealthIdle, t.HealthFresh}
}

// Operations: the hooks a program (or the otel module) counts and traces through, and a
// registry's users counted for gauges.
var _ = func() {
	_ = t.Client{Hooks: &t.Hooks{
		RequestStart: func(context.Context, t.RequestEvent) context.Context { return nil },
		RequestEnd:   func(context.Context, t.RequestEvent) {},
		RefreshStart: func(context.Context, t.RefreshEvent) context.Context { return nil },
		RefreshEnd:   func(context.Context, t.RefreshEvent) {},
		StoreStart:   func(context.Context, t.StoreEvent) context.Context { return nil },
		StoreEnd:     func(context.Context, t.StoreEvent) {},
		Validation:   func(context.Context, t.ValidationEvent) {},
		UserChange:   func(context.Context, t.UserEvent) {},
		TokenServed:  func(ctx context.Context, userID string, app bool) {},
	}}
	_ = t.RequestEvent{Endpoint: "", Method: "", Host: "", Status: 0, Duration: time.Duration(0), Err: nil}
	_ = t.RefreshEvent{UserID: "", App: false, Outcome: t.RefreshOK, Status: 0, Duration: time.Duration(0), Err: nil}
	_ = []t.RefreshOutcome{t.RefreshOK, t.RefreshRejected, t.RefreshInDoubt, t.RefreshTransient, t.RefreshCanceled, t.RefreshFailed}
	_ = t.ValidationEvent{UserID: "", Outcome: t.ValidationOK, Status: 0, Duration: time.Duration(0), Err: nil}
	_ = []t.ValidationOutcome{t.ValidationOK, t.ValidationInvalid, t.ValidationRateLimited, t.ValidationServerError,
		t.ValidationNetwork, t.ValidationCanceled, t.ValidationFailed}
	_ = t.StoreEvent{Op: t.StoreLoad, Key: "", Duration: time.Duration(0), Err: nil}
	_ = []t.StoreOp{t.StoreLoad, t.StoreSave, t.StoreSaveIf, t.StoreDelete, t.StoreLock, t.StoreRenew, t.StoreUnlock, t.StoreKeys}
	_ = t.UserEvent{UserID: "", Change: t.UserAdded}
	_ = []t.UserChange{t.UserAdded, t.UserRemoved, t.UserRevoked, t.UserInDoubt, t.UserRecovered}
	var _ func() t.UserCounts = (&t.UserTokens{}).Counts
	_ = t.UserCounts{Users: 0, States: t.HealthCounts{}, PendingPairs: 0, PendingMarks: 0, Refreshing: 0}
}

// Get Authorization By User, and the registry's audit on it.
var _ = func() {
	_ = t.DefaultHelixBaseURL
	c := &t.Client{HelixBaseURL: ""}
	var _ int = t.MaxAuthorizationUsers
	var _ func(context.Context, oauth2.TokenSource, ...string) ([]t.UserAuthorization, error) = c.UserAuthorizations
	_ = t.UserAuthorization{UserID: "", Login: "", Name: "", Scopes: []t.Scope{}, HasAuthorized: false, Unknown: false}
	u := &t.UserTokens{}
	var _ func(context.Context, t.AuditOptions) (*t.AuditResult, error) = u.Audit
	_ = t.AuditOptions{App: oauth2.TokenSource(nil), IntentScopes: func(intent string) []t.Scope { return nil },
		Interval: time.Duration(0), MaxCalls: 0, Cursor: ""}
	_ = t.AuditResult{Started: time.Time{}, Finished: time.Time{}, Checked: 0, Calls: 0, Done: false, Cursor: "", Error: "",
		Findings: []t.AuditFinding{{UserID: "", Login: "", Problem: t.AuditMissingScopes, Intents: []string{}, Missing: []t.Scope{}}}}
	_ = []t.AuditProblem{t.AuditMissingScopes, t.AuditNotAuthorized, t.AuditUnknownUser}
	s := &tt.Server{HelixURL: ""}
	_ = s
	_ = tt.AuthorizationsEndpoint
}

// Sealing at rest, in every store: one Keyring, one record format, one summary error.
var _ = func() {
	var _ func(string, map[string][]byte) (*t.Keyring, error) = t.NewKeyring
	var _ int = t.KeySize
	var _ int = t.SealOverhead
	var _ error = t.ErrCannotUnseal
	k := &t.Keyring{}
	var _ func() string = k.Current
	var _ func() []string = k.IDs
	var _ func(key, access, refresh string) (string, []byte, error) = k.Seal
	var _ func(key, keyID string, sealed []byte) (string, string, error) = k.Open
	var _ func(string, *t.StoredToken) ([]byte, error) = k.EncodeStoredToken
	var _ func(string, []byte) (*t.StoredToken, error) = k.DecodeStoredToken
	var _ func([]byte) (string, bool) = t.SealedKeyID
	var _ error = &t.UnsealError{Count: 0, Key: "", KeyIDs: []string{}, Held: []string{}}
	var _ func(...error) error = t.JoinStoreErrors
	fs := &t.FileStore{Keyring: k}
	var _ func(context.Context) (int, error) = fs.Reseal
}

var _ func(context.Context, []string, func(context.Context, string) (bool, error)) (int, error) = t.ResealEach

// A store that reads the token as it takes a lock, and one that releases a lock with its last save.
var _ = func() {
	var r t.LeaseReader
	var _ func(t.Lease) (*t.StoredToken, bool, error) = r.LeaseRead
	var s t.ReleasingSaver
	var _ func(context.Context, t.Lease, string, *t.StoredToken, *t.StoredToken) error = s.SaveIfUnlock
}
