// Command prometheus serves the metrics of a bot that holds many users' tokens, for Prometheus to
// scrape: refreshes and validations by outcome, requests to Twitch, store latency, and the users
// by state, with an alert's worth of series (twitchoauth_users{twitchoauth_user_state="revoked"}
// above 0: someone must log in again). /healthz serves the registry's health report, which names
// those users.
//
// Without a Twitch app configured it runs offline against a fake Twitch, makes every kind of event
// happen once, scrapes its own /metrics, prints what it found and exits:
//
//	go run ./examples/prometheus            # from examples/prometheus's parent module: cd there first
//	go run . -serve                         # the demo, then serve on -addr until Ctrl-C
//
// With one, it serves the users stored in ./user_token.<user id>.json (add them with
// ./examples/multiuser -add) on -addr until Ctrl-C:
//
//	TWITCH_CLIENT_ID=... TWITCH_CLIENT_SECRET=... go run . -addr 127.0.0.1:9464
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/twitchoauth/twitchoauth"
	twitchoauthotel "github.com/twitchoauth/twitchoauth/otel"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9464", "the loopback address to serve /metrics and /healthz on")
	serve := flag.Bool("serve", false, "offline demo: after it, serve on -addr until Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	c := twitchoauth.NewClient(os.Getenv("TWITCH_CLIENT_ID"), os.Getenv("TWITCH_CLIENT_SECRET"))
	if c.ClientID == "" {
		demoAddr := ""
		if *serve {
			demoAddr = *addr
		}
		if err := demo(ctx, os.Stdout, demoAddr); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(ctx, c, *addr); err != nil {
		log.Fatal(err)
	}
}

// metrics sets c's hooks to record into a Prometheus registry, and returns the handler that serves
// it and the meter provider, whose Shutdown ends the recording. Call it before anything is made
// from c.
func metrics(c *twitchoauth.Client) (http.Handler, *sdkmetric.MeterProvider, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	if err := twitchoauthotel.Instrument(c, twitchoauthotel.Options{MeterProvider: mp}); err != nil {
		return nil, nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), mp, nil
}

// serveMux serves /metrics and the registry's /healthz.
func serveMux(metrics http.Handler, users *twitchoauth.UserTokens) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.Handle("GET /healthz", users.HealthHandler())
	return mux
}

// listen listens on addr, which must be a loopback address: the metrics name no token, but the
// health report names users who must log in again.
func listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-addr %q is not a loopback address; put a proxy with access control in front to serve further", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics: %w (is another program on that port? pick another with -addr)", err)
	}
	return ln, nil
}

// serveUntil serves h on ln until ctx ends.
func serveUntil(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// run serves the metrics of the users stored in the working directory until ctx ends.
func run(ctx context.Context, c *twitchoauth.Client, addr string) error {
	h, mp, err := metrics(c)
	if err != nil {
		return err
	}
	defer mp.Shutdown(context.Background())
	users := twitchoauth.NewUserTokens(c, nil) // ./user_token.<user id>.json
	users.KeepRevoked = true                   // a revoked user stays, counted, until they log in again
	stopObserving, err := twitchoauthotel.ObserveUserTokens(users, twitchoauthotel.Options{MeterProvider: mp})
	if err != nil {
		return err
	}
	defer stopObserving()
	if err := users.Sync(ctx); err != nil {
		return err
	}
	ln, err := listen(addr)
	if err != nil {
		return err
	}
	log.Printf("serving %d users' metrics on http://%s/metrics and their health on /healthz; Ctrl-C stops", len(users.Users()), ln.Addr())
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- users.Run(runCtx) }()
	err = serveUntil(ctx, ln, serveMux(h, users))
	stopRun()
	if rerr := <-ran; !errors.Is(rerr, context.Canceled) {
		err = errors.Join(err, rerr)
	}
	return err
}
