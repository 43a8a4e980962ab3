package twitchoauthotel_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	twitchoauthotel "github.com/twitchoauth/twitchoauth/otel"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// world is a registry of two users, instrumented, over a fake Twitch, with in-memory exporters.
type world struct {
	srv     *twitchoauthtest.Server
	c       *twitchoauth.Client
	u       *twitchoauth.UserTokens
	reader  *sdkmetric.ManualReader
	spans   *tracetest.SpanRecorder
	mu      sync.Mutex
	secrets []string // every token seen, and each refresh token's hash
}

// The users: IDs no number in an export would hold by chance.
const alice, bob = "7700412", "7700913"

func newWorld(t *testing.T, userIDs bool) *world {
	t.Helper()
	w := &world{srv: twitchoauthtest.NewServer(t), reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(w.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(w.spans))
	t.Cleanup(func() { mp.Shutdown(context.Background()); tp.Shutdown(context.Background()) })
	opts := twitchoauthotel.Options{MeterProvider: mp, TracerProvider: tp, UserIDs: userIDs}
	w.c = w.srv.Client()
	if err := twitchoauthotel.Instrument(w.c, opts); err != nil {
		t.Fatal(err)
	}
	w.u = twitchoauth.NewUserTokens(w.c, twitchoauth.NewFileStore(t.TempDir()))
	w.u.OnRefresh = func(_ string, tok *oauth2.Token) { w.saw(tok) }
	stop, err := twitchoauthotel.ObserveUserTokens(w.u, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })
	for _, id := range []string{alice, bob} {
		w.srv.AddUser(id, "user"+id)
		tok := w.srv.IssueUserToken(id, twitchoauth.ScopeChatRead)
		w.saw(tok)
		if _, err := w.u.AddUserForToken(t.Context(), tok, "chat"+id); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *world) saw(tok *oauth2.Token) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.secrets = append(w.secrets, tok.AccessToken)
	if tok.RefreshToken != "" {
		w.secrets = append(w.secrets, tok.RefreshToken, twitchoauth.RefreshTokenHash(tok.RefreshToken))
	}
}

func (w *world) source(t *testing.T, id string) *twitchoauth.UserTokenSource {
	t.Helper()
	src, err := w.u.Source(id)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// live runs every kind of event once: refreshes that succeed, are rejected and fail for a while,
// validations that pass and are rate-limited, a user revoked and dropped.
func (w *world) live(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	a := w.source(t, alice)
	if _, err := a.Token(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ForceRefresh(ctx, nil); err != nil {
		t.Fatal(err)
	}
	b := w.source(t, bob)
	bt, err := b.Token()
	if err != nil {
		t.Fatal(err)
	}
	w.srv.Revoke(bt.RefreshToken)
	if _, err := b.ForceRefresh(ctx, nil); !errors.Is(err, twitchoauth.ErrInvalidRefreshToken) {
		t.Fatalf("bob's refresh after the revocation = %v; want the grant gone", err)
	}
	w.srv.Fail("token", 503, 1)
	if _, err := a.ForceRefresh(ctx, nil); err == nil {
		t.Fatal("a refresh answered 503 succeeded")
	}
	at, _ := a.Token()
	w.srv.RateLimit("validate", time.Second, 1)
	if _, err := w.c.ValidateToken(ctx, at.AccessToken); err == nil {
		t.Fatal("a validation answered 429 succeeded")
	}
	if _, err := w.c.ValidateToken(ctx, at.AccessToken); err != nil {
		t.Fatal(err)
	}
}

// points returns the data points of the named metric, each as its attributes ("k=v,k=v") and
// its count or value.
func points(t *testing.T, rm metricdata.ResourceMetrics, name string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch d := m.Data.(type) {
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[attrString(p.Attributes)] += int64(p.Count)
				}
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[attrString(p.Attributes)] += p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[attrString(p.Attributes)] += p.Value
				}
			default:
				t.Fatalf("%s: data of type %T", name, m.Data)
			}
		}
	}
	return out
}

func attrString(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.Emit())
	}
	return strings.Join(parts, ",")
}

// TestMetrics: each metric appears for its event, with the attributes that tell events apart.
func TestMetrics(t *testing.T) {
	w := newWorld(t, false)
	w.live(t)
	var rm metricdata.ResourceMetrics
	if err := w.reader.Collect(t.Context(), &rm); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"twitchoauth.refresh.duration": {
			"twitchoauth.refresh.outcome=ok,twitchoauth.token.kind=user",
			"http.response.status_code=400,twitchoauth.refresh.outcome=rejected,twitchoauth.token.kind=user",
			"http.response.status_code=503,twitchoauth.refresh.outcome=transient,twitchoauth.token.kind=user",
		},
		"twitchoauth.validation.duration": {
			"http.response.status_code=200,twitchoauth.validation.outcome=ok",
			"http.response.status_code=429,twitchoauth.validation.outcome=rate_limited",
		},
		"twitchoauth.store.operation.duration": {
			"db.operation.name=load", "db.operation.name=save_if", "db.operation.name=lock",
			"db.operation.name=unlock", "db.operation.name=delete",
		},
		"twitchoauth.user.changes": {
			"twitchoauth.user.change=added", "twitchoauth.user.change=revoked", "twitchoauth.user.change=removed",
		},
		"twitchoauth.tokens.served": {"twitchoauth.token.kind=user"},
	}
	for name, keys := range want {
		got := points(t, rm, name)
		for _, k := range keys {
			if got[k] == 0 {
				t.Errorf("%s: no point with %s; have %v", name, k, got)
			}
		}
	}
	if got := points(t, rm, "twitchoauth.user.changes"); got["twitchoauth.user.change=added"] != 2 || got["twitchoauth.user.change=revoked"] != 1 {
		t.Errorf("user changes %v; want 2 added, 1 revoked", got)
	}
	req := points(t, rm, "http.client.request.duration")
	var token503, validate429 bool
	for k := range req {
		token503 = token503 || strings.Contains(k, "error.type=503") && strings.Contains(k, "twitchoauth.endpoint=token") &&
			strings.Contains(k, "http.request.method=POST") && strings.Contains(k, "server.address=")
		validate429 = validate429 || strings.Contains(k, "error.type=429") && strings.Contains(k, "twitchoauth.endpoint=validate")
	}
	if !token503 || !validate429 {
		t.Errorf("requests %v; want a token request with error.type 503 and a validation with 429", req)
	}
	users := points(t, rm, "twitchoauth.users")
	for _, s := range []string{"in_doubt", "revoked", "pending", "backing_off", "idle", "fresh"} {
		if _, ok := users["twitchoauth.user.state="+s]; !ok {
			t.Errorf("twitchoauth.users has no %s series: %v", s, users)
		}
	}
	if users["twitchoauth.user.state=backing_off"] != 1 || sum(users) != 1 {
		t.Errorf("twitchoauth.users %v; want alice backing off after the 503, bob gone", users)
	}
	if p := points(t, rm, "twitchoauth.users.pending"); len(p) != 2 {
		t.Errorf("twitchoauth.users.pending %v; want a pair and a mark series", p)
	}
	w.noSecrets(t, rm)
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}

// TestSpans: a refresh is a span with its token request and its store operations under it; a
// failed one's status says its outcome and nothing more.
func TestSpans(t *testing.T) {
	w := newWorld(t, false)
	w.live(t)
	ended := w.spans.Ended()
	var refreshes []sdktrace.ReadOnlySpan
	for _, s := range ended {
		if s.Name() == "twitchoauth.refresh" {
			refreshes = append(refreshes, s)
		}
	}
	if len(refreshes) != 3 {
		t.Fatalf("%d refresh spans; want 3", len(refreshes))
	}
	ok := refreshes[0]
	var under []string
	for _, s := range ended {
		if s.Parent().SpanID() == ok.SpanContext().SpanID() {
			under = append(under, s.Name())
		}
	}
	for _, name := range []string{"POST", "twitchoauth.store lock", "twitchoauth.store load", "twitchoauth.store save_if", "twitchoauth.store unlock"} {
		if !slices.Contains(under, name) {
			t.Errorf("under the refresh: %q; want %s among them", under, name)
		}
	}
	for _, s := range refreshes[1:] {
		if s.Status().Description != "rejected" && s.Status().Description != "transient" {
			t.Errorf("a failed refresh's status is %q; want its outcome", s.Status().Description)
		}
	}
	w.noSecrets(t, metricdata.ResourceMetrics{})
}

// TestSpansUserIDs: user IDs are on spans only when the program asks.
func TestSpansUserIDs(t *testing.T) {
	for _, opt := range []bool{false, true} {
		t.Run(fmt.Sprint("UserIDs=", opt), func(t *testing.T) {
			w := newWorld(t, opt)
			if _, err := w.source(t, alice).ForceRefresh(t.Context(), nil); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, s := range w.spans.Ended() {
				for _, kv := range s.Attributes() {
					found = found || kv.Key == twitchoauthotel.UserIDKey && kv.Value.AsString() == alice
				}
			}
			if found != opt {
				t.Errorf("a span names the user: %v; want %v", found, opt)
			}
		})
	}
}

// noSecrets looks for every token seen, and every user ID, in what was exported: the spans'
// names, attributes, events and statuses, and rm's attributes.
func (w *world) noSecrets(t *testing.T, rm metricdata.ResourceMetrics) {
	t.Helper()
	var exported []string
	for _, s := range w.spans.Ended() {
		exported = append(exported, s.Name(), s.Status().Description)
		for _, kv := range s.Attributes() {
			exported = append(exported, string(kv.Key)+"="+kv.Value.Emit())
		}
		for _, e := range s.Events() {
			exported = append(exported, e.Name)
			for _, kv := range e.Attributes {
				exported = append(exported, string(kv.Key)+"="+kv.Value.Emit())
			}
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			exported = append(exported, fmt.Sprintf("%+v", m))
		}
	}
	all := strings.Join(exported, "\n")
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.secrets) < 6 {
		t.Fatalf("only %d tokens seen", len(w.secrets))
	}
	for _, s := range append(slices.Clone(w.secrets), alice, bob) {
		if strings.Contains(all, s) {
			t.Errorf("the export holds a token or user ID (%d bytes)", len(s))
		}
	}
}
