//go:build linux || darwin

package twitchoauth

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// cpuPeriod is the validation period of BenchmarkUserTokensValidateCPU: 10,000 users in it are
// 2,000 validations a second, well within what loopback serves, so that both loops keep pace.
const cpuPeriod = 5 * time.Second

// BenchmarkUserTokensValidateCPU measures the CPU this process spends per validation while Run
// validates 10,000 users once per period (cpu-ns/validation). Twitch's fake runs in a child
// process, so that its CPU is not counted. "floor" validates the same tokens at the same pace
// with a bare net/http loop of as many workers (MaxInFlight), keeping as many idle connections,
// and reading each answer's JSON. An op is one period.
func BenchmarkUserTokensValidateCPU(b *testing.B) {
	if os.Getenv("TWITCHOAUTH_FAKE_PROCESS") != "" {
		serveFakeProcess(b)
		return
	}
	cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkUserTokensValidateCPU$", "-test.benchtime=1x")
	cmd.Env = append(os.Environ(), "TWITCHOAUTH_FAKE_PROCESS=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close() // the child serves until its standard input ends
	store := newMemStore()
	tokens := map[string]string{}
	var base string
	for sc := bufio.NewScanner(out); base == "" && sc.Scan(); {
		switch f := strings.Fields(sc.Text()); {
		case len(f) == 3 && f[0] == "USER":
			tokens[f[1]] = f[2]
			store.Save(b.Context(), f[1], &StoredToken{AccessToken: f[2], RefreshToken: "r-" + f[1], Expiry: time.Now().Add(4 * time.Hour),
				Scopes: []Scope{ScopeChatRead, ScopeChatEdit}, UserID: f[1], Login: "user" + f[1], ClientID: faketwitch.ClientID})
		case len(f) == 2 && f[0] == "BASE":
			base = f[1]
		}
	}
	go io.Copy(io.Discard, out)
	if base == "" || len(tokens) != scaleUsers {
		b.Fatalf("the fake's process gave %d users and base %q", len(tokens), base)
	}
	transport := func() (*http.Transport, *countValidations) {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = defaultMaxInFlight
		return t, &countValidations{base: t}
	}

	b.Run("UserTokens", func(b *testing.B) {
		t, counter := transport()
		defer t.CloseIdleConnections()
		c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
		c.AuthBaseURL = base
		c.HTTPClient = &http.Client{Transport: counter}
		u := NewUserTokens(c, store)
		u.ValidateEvery = cpuPeriod
		if err := u.Sync(b.Context()); err != nil {
			b.Fatal(err)
		}
		stop := run(b, u)
		defer stop()
		var cpu time.Duration
		for range b.N {
			done := counter.await(scaleUsers)
			start := cpuTime(b)
			select {
			case <-done:
			case <-time.After(4 * cpuPeriod):
				b.Fatalf("%d users not validated in %v", scaleUsers, 4*cpuPeriod)
			}
			cpu += cpuTime(b) - start
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/scaleUsers, "cpu-ns/validation")
	})
	b.Run("floor", func(b *testing.B) {
		t, counter := transport()
		defer t.CloseIdleConnections()
		hc := &http.Client{Transport: counter}
		access := make([]string, 0, len(tokens))
		for _, id := range ids(scaleUsers) {
			access = append(access, tokens[id])
		}
		var cpu time.Duration
		for range b.N {
			start := cpuTime(b)
			work := make(chan string)
			var wg sync.WaitGroup
			for range defaultMaxInFlight {
				wg.Go(func() {
					for tok := range work {
						if err := bareValidate(b.Context(), hc, base+"validate", tok); err != nil {
							b.Error(err)
						}
					}
				})
			}
			began := time.Now()
			for i, tok := range access {
				time.Sleep(time.Until(began.Add(cpuPeriod * time.Duration(i) / scaleUsers)))
				work <- tok
			}
			close(work)
			wg.Wait()
			cpu += cpuTime(b) - start
		}
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/scaleUsers, "cpu-ns/validation")
	})
}

// serveFakeProcess is the child of BenchmarkUserTokensValidateCPU: it issues 10,000 users'
// tokens, prints them and its base URL, and serves until its standard input ends.
var serveFakeOnce sync.Once

func serveFakeProcess(b *testing.B) {
	serveFakeOnce.Do(func() {
		fake := faketwitch.New()
		w := bufio.NewWriter(os.Stdout)
		for _, id := range ids(scaleUsers) {
			tok := newUser(fake, id, 0)
			fmt.Fprintf(w, "USER %s %s\n", id, tok.AccessToken)
		}
		fmt.Fprintf(w, "BASE %s\n", fake.Start())
		w.Flush()
		io.Copy(io.Discard, os.Stdin)
		fake.Close()
	})
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
