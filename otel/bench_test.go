//go:build linux || darwin

package twitchoauthotel_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/twitchoauth/twitchoauth"
	twitchoauthotel "github.com/twitchoauth/twitchoauth/otel"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// The benchmarks below run each job bare and with this module, side by side in one run: the
// module's cost is the difference. "otel" records into an SDK meter and tracer provider whose
// reader and span processor keep everything (sampling every span), the most a program pays.

// instrumented returns c with this module's hooks on an SDK meter and tracer.
func instrumented(b *testing.B, c *twitchoauth.Client) *twitchoauth.Client {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { mp.Shutdown(context.Background()); tp.Shutdown(context.Background()) })
	if err := twitchoauthotel.Instrument(c, twitchoauthotel.Options{MeterProvider: mp, TracerProvider: tp}); err != nil {
		b.Fatal(err)
	}
	return c
}

func modes(b *testing.B, run func(b *testing.B, srv *twitchoauthtest.Server, c *twitchoauth.Client)) {
	for _, mode := range []string{"bare", "otel"} {
		b.Run(mode, func(b *testing.B) {
			srv := twitchoauthtest.NewServer(b)
			c := srv.Client()
			if mode == "otel" {
				instrumented(b, c)
			}
			run(b, srv, c)
		})
	}
}

// registered returns the source of the fake's user, added to a registry on a FileStore.
func registered(b *testing.B, srv *twitchoauthtest.Server, c *twitchoauth.Client) *twitchoauth.UserTokenSource {
	u := twitchoauth.NewUserTokens(c, twitchoauth.NewFileStore(b.TempDir()))
	if _, err := u.AddUserForToken(b.Context(), srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)); err != nil {
		b.Fatal(err)
	}
	src, err := u.Source(twitchoauthtest.UserID)
	if err != nil {
		b.Fatal(err)
	}
	return src
}

// BenchmarkTokenCached: a registry user's cached token, handed out (the module counts it).
func BenchmarkTokenCached(b *testing.B) {
	modes(b, func(b *testing.B, srv *twitchoauthtest.Server, c *twitchoauth.Client) {
		src := registered(b, srv, c)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := src.Token(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRefresh: a registry user's refresh through a FileStore (lock, read, write, unlock)
// and the loopback fake: a span with five under it, and six histograms recorded.
func BenchmarkRefresh(b *testing.B) {
	modes(b, func(b *testing.B, srv *twitchoauthtest.Server, c *twitchoauth.Client) {
		src := registered(b, srv, c)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := src.ForceRefresh(b.Context(), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkValidate: validations against the loopback fake, with the process's CPU time per
// validation (user and system, from getrusage, the fake's included) beside the wall time.
func BenchmarkValidate(b *testing.B) {
	modes(b, func(b *testing.B, srv *twitchoauthtest.Server, c *twitchoauth.Client) {
		tok := srv.IssueUserToken(twitchoauthtest.UserID, twitchoauth.ScopeChatRead)
		b.ReportAllocs()
		before := cpuTime()
		for b.Loop() {
			if _, err := c.ValidateToken(b.Context(), tok.AccessToken); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime()-before).Nanoseconds())/float64(b.N), "cpu-ns/op")
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
