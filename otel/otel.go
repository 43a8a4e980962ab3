package twitchoauthotel

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/twitchoauth/twitchoauth"
)

// ScopeName is the instrumentation scope of the meter and tracer.
const ScopeName = "github.com/twitchoauth/twitchoauth/otel"

// The attributes of the package's own.
const (
	RefreshOutcomeKey    = attribute.Key("twitchoauth.refresh.outcome")
	ValidationOutcomeKey = attribute.Key("twitchoauth.validation.outcome")
	TokenKindKey         = attribute.Key("twitchoauth.token.kind")
	EndpointKey          = attribute.Key("twitchoauth.endpoint")
	UserChangeKey        = attribute.Key("twitchoauth.user.change")
	UserStateKey         = attribute.Key("twitchoauth.user.state")
	PendingKindKey       = attribute.Key("twitchoauth.pending.kind")
	// UserIDKey is a span's user, set only with [Options].UserIDs.
	UserIDKey = attribute.Key("twitch.user.id")
)

// Options say where the metrics and spans go.
type Options struct {
	// MeterProvider makes the meter the metrics are recorded with. Defaults to
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider makes the tracer the spans are made with. Defaults to
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// UserIDs puts the Twitch user ID (twitch.user.id) on the spans of a user's refresh and store
	// operations. User IDs are personal data; metrics never carry them. Defaults to false.
	UserIDs bool
}

// Buckets of the duration histograms, in seconds. A request's are OpenTelemetry's HTTP
// buckets; a renewal's reach further, since a renewal may wait for another replica's (35 s at
// most); a store operation's start lower, since one takes a fraction of a millisecond.
var (
	requestBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	refreshBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 45}
	storeBuckets   = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
)

// recorder turns hook calls into metrics and spans.
type recorder struct {
	tracer  trace.Tracer
	userIDs bool

	refresh, validation, request, store metric.Float64Histogram
	changes                             metric.Int64Counter

	// Tokens handed out are counted here and read at each collection: a counter's Add on every
	// Token would cost more than the Token itself.
	servedUser, servedApp atomic.Int64
}

// NewHooks returns hooks that record what the package does as metrics and spans. Set them as a
// Client's Hooks before anything is made from it, or use [Instrument]. Each call registers a
// callback (the count of tokens handed out) for the meter provider's life: make the hooks once and
// share them among a program's Clients; counts of several hooks on one provider add up.
func NewHooks(opts Options) (*twitchoauth.Hooks, error) {
	r, err := newRecorder(opts)
	if err != nil {
		return nil, err
	}
	return &twitchoauth.Hooks{
		RequestStart: r.requestStart,
		RequestEnd:   r.requestEnd,
		RefreshStart: r.refreshStart,
		RefreshEnd:   r.refreshEnd,
		StoreStart:   r.storeStart,
		StoreEnd:     r.storeEnd,
		Validation:   r.validated,
		UserChange:   r.userChanged,
		TokenServed:  r.tokenServed,
	}, nil
}

// Instrument sets c's Hooks to [NewHooks]'s. Call it before anything is made from c.
func Instrument(c *twitchoauth.Client, opts Options) error {
	h, err := NewHooks(opts)
	if err != nil {
		return err
	}
	c.Hooks = h
	return nil
}

func meterOf(opts Options) metric.Meter {
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	return mp.Meter(ScopeName)
}

func newRecorder(opts Options) (*recorder, error) {
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := meterOf(opts)
	r := &recorder{tracer: tp.Tracer(ScopeName), userIDs: opts.UserIDs}
	var errs []error
	hist := func(name, desc string, buckets []float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	count := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	r.refresh = hist("twitchoauth.refresh.duration", "Renewals of a token, by outcome.", refreshBuckets)
	r.validation = hist("twitchoauth.validation.duration", "Validations of a token with Twitch, by outcome.", requestBuckets)
	r.request = hist("http.client.request.duration", "Requests to Twitch's identity server.", requestBuckets)
	r.store = hist("twitchoauth.store.operation.duration", "Operations on the token store.", storeBuckets)
	r.changes = count("twitchoauth.user.changes", "{change}", "Users added, removed, revoked, put in doubt and recovered.")
	served, err := m.Int64ObservableCounter("twitchoauth.tokens.served", metric.WithUnit("{token}"),
		metric.WithDescription("Tokens handed out by sources."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	user := metric.WithAttributeSet(attribute.NewSet(TokenKindKey.String("user")))
	app := metric.WithAttributeSet(attribute.NewSet(TokenKindKey.String("app")))
	if _, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(served, r.servedUser.Load(), user)
		o.ObserveInt64(served, r.servedApp.Load(), app)
		return nil
	}, served); err != nil {
		return nil, err
	}
	return r, nil
}

func tokenKind(app bool) attribute.KeyValue {
	if app {
		return TokenKindKey.String("app")
	}
	return TokenKindKey.String("user")
}

// requestAttrs are the attributes of a request's span and its duration, but its outcome's.
func requestAttrs(e twitchoauth.RequestEvent) []attribute.KeyValue {
	host, port := splitHost(e.Host)
	attrs := []attribute.KeyValue{
		semconv.HTTPRequestMethodKey.String(e.Method),
		semconv.ServerAddress(host),
		EndpointKey.String(e.Endpoint),
	}
	if port > 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	return attrs
}

func (r *recorder) requestStart(ctx context.Context, e twitchoauth.RequestEvent) context.Context {
	ctx, _ = r.tracer.Start(ctx, e.Method, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(requestAttrs(e)...))
	return ctx
}

func (r *recorder) requestEnd(ctx context.Context, e twitchoauth.RequestEvent) {
	attrs := requestAttrs(e)
	if e.Status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(e.Status))
	}
	errType := ""
	switch {
	case e.Status >= 400:
		errType = strconv.Itoa(e.Status)
	case e.Err != nil && (errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded)):
		errType = "canceled"
	case e.Err != nil:
		errType = "network"
	}
	if errType != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
	}
	r.request.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrs...))
	span := trace.SpanFromContext(ctx)
	if e.Status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(e.Status))
	}
	if errType != "" {
		span.SetAttributes(semconv.ErrorTypeKey.String(errType))
		span.SetStatus(codes.Error, errType)
	}
	span.End()
}

func (r *recorder) refreshStart(ctx context.Context, e twitchoauth.RefreshEvent) context.Context {
	attrs := []attribute.KeyValue{tokenKind(e.App)}
	if r.userIDs && e.UserID != "" {
		attrs = append(attrs, UserIDKey.String(e.UserID))
	}
	ctx, _ = r.tracer.Start(ctx, "twitchoauth.refresh", trace.WithAttributes(attrs...))
	return ctx
}

func (r *recorder) refreshEnd(ctx context.Context, e twitchoauth.RefreshEvent) {
	attrs := []attribute.KeyValue{tokenKind(e.App), RefreshOutcomeKey.String(string(e.Outcome))}
	if e.Status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(e.Status))
	}
	r.refresh.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrs...))
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attrs[1:]...)
	if e.Outcome != twitchoauth.RefreshOK {
		span.SetStatus(codes.Error, string(e.Outcome)) // never the error's text
	}
	span.End()
}

func (r *recorder) storeStart(ctx context.Context, e twitchoauth.StoreEvent) context.Context {
	attrs := []attribute.KeyValue{semconv.DBOperationName(string(e.Op))}
	if r.userIDs && e.Key != "" {
		attrs = append(attrs, UserIDKey.String(e.Key))
	}
	ctx, _ = r.tracer.Start(ctx, "twitchoauth.store "+string(e.Op), trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attrs...))
	return ctx
}

func (r *recorder) storeEnd(ctx context.Context, e twitchoauth.StoreEvent) {
	attrs := []attribute.KeyValue{semconv.DBOperationName(string(e.Op))}
	errType := storeErrorType(e)
	if errType != "" {
		attrs = append(attrs, semconv.ErrorTypeKey.String(errType))
	}
	r.store.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrs...))
	span := trace.SpanFromContext(ctx)
	if errType != "" {
		span.SetAttributes(semconv.ErrorTypeKey.String(errType))
		span.SetStatus(codes.Error, errType)
	}
	span.End()
}

// storeErrorType names a store operation's failure in a few words; "" when it did not fail (a
// Load that found nothing answered).
func storeErrorType(e twitchoauth.StoreEvent) string {
	switch err := e.Err; {
	case err == nil, e.Op == twitchoauth.StoreLoad && errors.Is(err, twitchoauth.ErrTokenNotFound):
		return ""
	case errors.Is(err, twitchoauth.ErrTokenChanged):
		return "changed"
	case errors.Is(err, twitchoauth.ErrLeaseLost):
		return "lease_lost"
	case errors.Is(err, twitchoauth.ErrCannotUnseal):
		return "cannot_unseal"
	case errors.Is(err, twitchoauth.ErrTokenCorrupt):
		return "corrupt"
	case errors.Is(err, twitchoauth.ErrTokenNotFound):
		return "not_found"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

func (r *recorder) validated(ctx context.Context, e twitchoauth.ValidationEvent) {
	attrs := []attribute.KeyValue{ValidationOutcomeKey.String(string(e.Outcome))}
	if e.Status != 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(e.Status))
	}
	r.validation.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrs...))
}

func (r *recorder) userChanged(ctx context.Context, e twitchoauth.UserEvent) {
	r.changes.Add(ctx, 1, metric.WithAttributes(UserChangeKey.String(string(e.Change))))
}

func (r *recorder) tokenServed(_ context.Context, _ string, app bool) {
	if app {
		r.servedApp.Add(1)
		return
	}
	r.servedUser.Add(1)
}

// splitHost splits host:port; port is 0 when there is none.
func splitHost(hostport string) (string, int) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport, 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}
