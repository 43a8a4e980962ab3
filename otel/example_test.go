package twitchoauthotel_test

import (
	"context"
	"fmt"
	"os"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/twitchoauth/twitchoauth"
	twitchoauthotel "github.com/twitchoauth/twitchoauth/otel"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// A registry's metrics: instrument the Client before anything is made from it, then observe the
// registry's users by state.
func ExampleInstrument() {
	ctx := context.Background()
	fake := twitchoauthtest.New() // a fake Twitch; use twitchoauth.NewClient with your app
	defer fake.Close()
	reader := sdkmetric.NewManualReader() // in a program: a Prometheus or OTLP exporter
	opts := twitchoauthotel.Options{MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))}

	c := fake.Client()
	if err := twitchoauthotel.Instrument(c, opts); err != nil {
		panic(err)
	}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	users := twitchoauth.NewUserTokens(c, twitchoauth.NewFileStore(dir))
	stop, err := twitchoauthotel.ObserveUserTokens(users, opts)
	if err != nil {
		panic(err)
	}
	defer stop()
	if _, err := users.AddUserForToken(ctx, fake.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)); err != nil {
		panic(err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		panic(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		fmt.Println(m.Name)
	}
	// Unordered output:
	// twitchoauth.validation.duration
	// http.client.request.duration
	// twitchoauth.store.operation.duration
	// twitchoauth.user.changes
	// twitchoauth.tokens.served
	// twitchoauth.users
	// twitchoauth.users.pending
	// twitchoauth.users.refreshing
}
