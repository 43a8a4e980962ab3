package twitchoauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// memTransport serves requests with the fake in memory, so that a synctest bubble's fake clock drives
// the whole flow (an httptest server would block the bubble). It records when each request arrived.
type memTransport struct {
	fake *faketwitch.Server
	// fail, when set, may turn a request into a network error before the fake sees it.
	fail func(*http.Request) error

	mu    sync.Mutex
	calls []call
}

type call struct {
	at       time.Time
	endpoint string
}

func (m *memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.calls = append(m.calls, call{time.Now(), strings.TrimPrefix(req.URL.Path, "/oauth2/")})
	m.mu.Unlock()
	if m.fail != nil {
		if err := m.fail(req); err != nil {
			return nil, err
		}
	}
	rec := httptest.NewRecorder()
	m.fake.ServeHTTP(rec, req)
	if err := ctx.Err(); err != nil { // a delayed or hanging fault gave up
		return nil, err
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// pollTimes returns when the token endpoint was called, as offsets from start.
func (m *memTransport) pollTimes(start time.Time) []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []time.Duration
	for _, c := range m.calls {
		if c.endpoint == "token" {
			out = append(out, c.at.Sub(start))
		}
	}
	return out
}

// bubble is one device flow inside a synctest bubble.
type bubble struct {
	fake  *faketwitch.Server
	tr    *memTransport
	c     *Client
	flow  *CodeFlow
	start time.Time
}

// newBubble must be called inside synctest.Test. The fake is built there so that its clock is the
// bubble's; configure runs before any request. The Client is the fake's confidential app.
func newBubble(t *testing.T, configure func(*faketwitch.Server)) *bubble {
	t.Helper()
	fake := faketwitch.New()
	if configure != nil {
		configure(fake)
	}
	tr := &memTransport{fake: fake}
	c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	c.AuthBaseURL = "http://fake.invalid/oauth2/"
	c.HTTPClient = &http.Client{Transport: tr}
	return &bubble{fake: fake, tr: tr, c: c, flow: NewCodeFlow(c, []Scope{ScopeChatRead, ScopeChatEdit}), start: time.Now()}
}

// getCode runs GetCode and returns the user code.
func (b *bubble) getCode(t *testing.T) string {
	t.Helper()
	code, _, err := b.flow.GetCode(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// at runs fn in a goroutine after d of fake time.
func (b *bubble) at(d time.Duration, fn func()) {
	go func() {
		time.Sleep(time.Until(b.start.Add(d)))
		fn()
	}()
}

// wait runs WaitForAuthComplete and checks when it returned.
func (b *bubble) wait(t *testing.T, ctx context.Context, wantAt time.Duration) error {
	t.Helper()
	tok, err := b.flow.WaitForAuthComplete(ctx)
	if got := time.Since(b.start); got != wantAt {
		t.Errorf("WaitForAuthComplete returned at %v, want %v", got, wantAt)
	}
	if err == nil && tok == nil {
		t.Error("WaitForAuthComplete returned neither a token nor an error")
	}
	if err != nil && tok != nil {
		t.Errorf("WaitForAuthComplete returned a token and %v", err)
	}
	return err
}

func (b *bubble) assertPolls(t *testing.T, want ...time.Duration) {
	t.Helper()
	if got := b.tr.pollTimes(b.start); !slices.Equal(got, want) {
		t.Errorf("polls at %v, want %v", got, want)
	}
}

// deviceCodes returns the device codes of the token requests, in order.
func (b *bubble) deviceCodes() []string {
	var out []string
	for _, r := range b.fake.Requests() {
		if r.Endpoint == "token" {
			out = append(out, r.Form.Get("device_code"))
		}
	}
	return out
}

func seconds(ss ...int) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}

func assertFlowEnded(t *testing.T, f *CodeFlow) {
	t.Helper()
	if _, err := f.WaitForAuthComplete(t.Context()); !errors.Is(err, ErrFlowNotStarted) {
		t.Errorf("WaitForAuthComplete after the end: %v, want ErrFlowNotStarted", err)
	}
	if !f.ExpiresAt().IsZero() || f.Interval() != 0 {
		t.Errorf("after the end: ExpiresAt %v, Interval %v; want zero", f.ExpiresAt(), f.Interval())
	}
}

func TestCodeFlowNotStarted(t *testing.T) {
	f := NewCodeFlow(NewClient("id", ""), nil)
	if _, err := f.WaitForAuthComplete(t.Context()); !errors.Is(err, ErrFlowNotStarted) {
		t.Errorf("err = %v, want ErrFlowNotStarted", err)
	}
	if !f.ExpiresAt().IsZero() || f.Interval() != 0 {
		t.Errorf("ExpiresAt %v, Interval %v before GetCode; want zero", f.ExpiresAt(), f.Interval())
	}
}

func TestCodeFlowGetCode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, nil)
		code, uri, err := b.flow.GetCode(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != 8 || !strings.Contains(uri, "device-code="+code) {
			t.Errorf("GetCode = %q, %q", code, uri)
		}
		if got, want := b.flow.ExpiresAt(), b.start.Add(1800*time.Second); !got.Equal(want) {
			t.Errorf("ExpiresAt = %v, want %v", got, want)
		}
		if got := b.flow.Interval(); got != 5*time.Second {
			t.Errorf("Interval = %v, want 5s", got)
		}
		r := b.fake.Requests()[0]
		if r.Endpoint != "device" || r.Method != http.MethodPost || r.ContentType != "application/x-www-form-urlencoded" {
			t.Errorf("request: %+v", r)
		}
		if r.Form.Get("client_id") != faketwitch.ClientID || r.Form.Get("scopes") != "chat:read chat:edit" ||
			r.Form.Has("scope") || r.Form.Has("client_secret") || r.RawQuery != "" {
			t.Errorf("form %v, query %q: want client_id and scopes in the body only, no secret", r.Form, r.RawQuery)
		}
	})
}

func TestCodeFlowGetCodeErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, nil)
		b.fake.Fail("device", faketwitch.Fault{Status: 200, Body: `{"user_code":"ABC"}`, Count: 1})
		var ae *APIError
		if _, _, err := b.flow.GetCode(t.Context()); !errors.As(err, &ae) || ae.Endpoint != "device" {
			t.Errorf("answer without device_code: %v, want a device APIError", err)
		}
		b.c.ClientID = "nobody"
		if _, _, err := b.flow.GetCode(t.Context()); !errors.As(err, &ae) || ae.StatusCode != 400 {
			t.Errorf("unknown client: %v, want a 400 APIError", err)
		}
		assertFlowEnded(t, b.flow)
	})
}

func TestCodeFlowApproved(t *testing.T) {
	for _, public := range []bool{false, true} {
		name := map[bool]string{false: "confidential", true: "public"}[public]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBubble(t, nil)
				if public {
					b.c.ClientID, b.c.ClientSecret = faketwitch.PublicClientID, ""
				}
				code := b.getCode(t)
				b.at(12*time.Second, func() { b.fake.ApproveDevice(code) })
				tok, err := b.flow.WaitForAuthComplete(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				b.assertPolls(t, seconds(5, 10, 15)...)
				if time.Since(b.start) != 15*time.Second {
					t.Errorf("returned at %v, want 15s", time.Since(b.start))
				}
				if tok.AccessToken == "" || tok.RefreshToken == "" || tok.TokenType != "bearer" {
					t.Errorf("token = %+v", tok)
				}
				if got := tok.Expiry.Sub(time.Now()); got != 4*time.Hour {
					t.Errorf("Expiry in %v, want 4h", got)
				}
				if got := TokenScopes(tok); !slices.Equal(got, []Scope{ScopeChatRead, ScopeChatEdit}) {
					t.Errorf("scopes = %v", got)
				}
				for _, r := range b.fake.Requests()[1:] {
					f := r.Form
					if f.Get("client_id") != b.c.ClientID || f.Get("device_code") == "" ||
						f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code" || r.RawQuery != "" {
						t.Errorf("poll form %v, query %q", f, r.RawQuery)
					}
					if f.Has("client_secret") == public || (!public && f.Get("client_secret") != faketwitch.ClientSecret) {
						t.Errorf("poll sent client_secret %q (public %v)", f.Get("client_secret"), public)
					}
				}
				assertFlowEnded(t, b.flow)
			})
		})
	}
}

func TestCodeFlowInterval(t *testing.T) {
	tests := []struct {
		name      string
		interval  int // the fake's interval; 0 leaves it out of the answer
		slowAt    time.Duration
		slowDowns int
		approveAt time.Duration
		want      []time.Duration
		wantIvl   time.Duration // Interval() just before the end
	}{
		{"honoured", 3, 0, 0, 7 * time.Second, seconds(3, 6, 9), 3 * time.Second},
		{"absent means 5s", 0, 0, 0, 7 * time.Second, seconds(5, 10), 5 * time.Second},
		{"slow_down on the 2nd poll adds 5s for good", 5, 6 * time.Second, 1, 35 * time.Second,
			seconds(5, 10, 20, 30, 40), 10 * time.Second},
		{"two slow_downs", 5, 0, 2, 31 * time.Second, seconds(5, 15, 30, 45), 15 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBubble(t, func(s *faketwitch.Server) { s.DeviceInterval = tt.interval })
				code := b.getCode(t)
				b.at(tt.slowAt, func() { b.fake.SlowDown(tt.slowDowns) })
				var ivl time.Duration
				b.at(tt.approveAt, func() {
					ivl = b.flow.Interval()
					b.fake.ApproveDevice(code)
				})
				if err := b.wait(t, t.Context(), tt.want[len(tt.want)-1]); err != nil {
					t.Fatal(err)
				}
				b.assertPolls(t, tt.want...)
				if ivl != tt.wantIvl {
					t.Errorf("Interval() = %v, want %v", ivl, tt.wantIvl)
				}
			})
		})
	}
}

func TestCodeFlowExpiry(t *testing.T) {
	tests := []struct {
		expiresIn int
		want      []time.Duration
	}{
		{12, seconds(5, 10)}, // ends at 12 without a third poll
		{10, seconds(5)},     // a poll at the deadline is not made
		{11, seconds(5, 10)},
		{4, nil}, // no time for even one poll
	}
	for _, tt := range tests {
		t.Run(time.Duration(tt.expiresIn*int(time.Second)).String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBubble(t, func(s *faketwitch.Server) { s.DeviceExpiresIn = tt.expiresIn })
				b.getCode(t)
				err := b.wait(t, t.Context(), time.Duration(tt.expiresIn)*time.Second)
				if !errors.Is(err, ErrDeviceCodeExpired) {
					t.Errorf("err = %v, want ErrDeviceCodeExpired", err)
				}
				b.assertPolls(t, tt.want...)
				time.Sleep(time.Minute)
				b.assertPolls(t, tt.want...)
				assertFlowEnded(t, b.flow)
			})
		})
	}
}

func TestCodeFlowEnds(t *testing.T) {
	tests := []struct {
		name  string
		fault *faketwitch.Fault // queued on the token endpoint
		deny  bool
		is    error
		ended bool
	}{
		{name: "denied", deny: true, is: ErrAccessDenied, ended: true},
		{name: "denied, RFC style", fault: &faketwitch.Fault{Status: 400,
			Body: `{"error":"access_denied","error_description":"The user denied you access"}`}, is: ErrAccessDenied, ended: true},
		{name: "invalid device code", fault: &faketwitch.Fault{Status: 400,
			Body: `{"status":400,"message":"invalid device code"}`}, is: ErrDeviceCodeExpired, ended: true},
		{name: "other answer", fault: &faketwitch.Fault{Status: 403,
			Body: `{"status":403,"message":"invalid client secret"}`}, is: ErrUnauthorized},
		{name: "other 400", fault: &faketwitch.Fault{Status: 400,
			Body: `{"status":400,"message":"missing client id"}`}},
		{name: "200 without a token", fault: &faketwitch.Fault{Status: 200, Body: `{"token_type":"bearer"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBubble(t, nil)
				code := b.getCode(t)
				if tt.deny {
					b.at(3*time.Second, func() { b.fake.DenyDevice(code) })
				}
				if tt.fault != nil {
					tt.fault.Count = 1
					b.fake.Fail("token", *tt.fault)
				}
				err := b.wait(t, t.Context(), 5*time.Second)
				var ae *APIError
				if !errors.As(err, &ae) || ae.Endpoint != "token" {
					t.Fatalf("err = %v, want a token APIError", err)
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("err = %v, want one that Is %v", err, tt.is)
				}
				for _, other := range []error{ErrAccessDenied, ErrDeviceCodeExpired} {
					if other != tt.is && errors.Is(err, other) {
						t.Errorf("err = %v also Is %v", err, other)
					}
				}
				b.assertPolls(t, seconds(5)...)
				if tt.ended {
					assertFlowEnded(t, b.flow)
				} else if b.flow.Interval() != 5*time.Second {
					t.Error("flow ended on an answer that is not final")
				}
			})
		})
	}
}

func TestCodeFlowTransient(t *testing.T) {
	t.Run("5xx then success", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			code := b.getCode(t)
			b.fake.ApproveDevice(code)
			b.fake.Fail("token", faketwitch.Fault{Status: 503, Body: "<html>busy</html>", Count: 1})
			if err := b.wait(t, t.Context(), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			b.assertPolls(t, seconds(5, 10)...)
		})
	})

	t.Run("network error then success", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			failures := 2
			b.tr.fail = func(r *http.Request) error {
				if strings.HasSuffix(r.URL.Path, "/token") && failures > 0 {
					failures--
					return errors.New("connection reset by peer")
				}
				return nil
			}
			code := b.getCode(t)
			b.fake.ApproveDevice(code)
			if err := b.wait(t, t.Context(), 15*time.Second); err != nil {
				t.Fatal(err)
			}
			b.assertPolls(t, seconds(5, 10, 15)...)
		})
	})

	t.Run("failing until the deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, func(s *faketwitch.Server) { s.DeviceExpiresIn = 12 })
			var logs bytes.Buffer
			b.c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			b.getCode(t)
			b.fake.Fail("token", faketwitch.Fault{Status: 502, Body: `{"status":502,"message":"Bad Gateway"}`})
			err := b.wait(t, t.Context(), 12*time.Second)
			var ae *APIError
			if !errors.Is(err, ErrDeviceCodeExpired) || !errors.As(err, &ae) || ae.StatusCode != 502 {
				t.Errorf("err = %v, want ErrDeviceCodeExpired wrapping the 502", err)
			}
			b.assertPolls(t, seconds(5, 10)...)
			dc := b.deviceCodes()[0]
			if strings.Contains(err.Error(), dc) || strings.Contains(logs.String(), dc) {
				t.Error("the device code leaked into the error or the log")
			}
			if n := strings.Count(logs.String(), "retrying"); n != 2 {
				t.Errorf("%d retry lines logged, want 2:\n%s", n, logs.String())
			}
		})
	})

	t.Run("a pending answer after a failure clears it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, func(s *faketwitch.Server) { s.DeviceExpiresIn = 12 })
			b.getCode(t)
			b.fake.Fail("token", faketwitch.Fault{Status: 500, Count: 1})
			err := b.wait(t, t.Context(), 12*time.Second)
			var ae *APIError
			if !errors.Is(err, ErrDeviceCodeExpired) || errors.As(err, &ae) {
				t.Errorf("err = %v, want plain ErrDeviceCodeExpired", err)
			}
		})
	})
}

func TestCodeFlowContext(t *testing.T) {
	t.Run("done mid-wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			code := b.getCode(t)
			ctx, cancel := context.WithCancel(t.Context())
			b.at(7*time.Second, cancel)
			if err := b.wait(t, ctx, 7*time.Second); !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			b.assertPolls(t, seconds(5)...)

			// The flow stays: a later call polls the same code.
			if b.flow.Interval() != 5*time.Second {
				t.Fatal("flow ended on a cancel")
			}
			b.fake.ApproveDevice(code)
			if err := b.wait(t, t.Context(), 12*time.Second); err != nil {
				t.Fatal(err)
			}
			b.assertPolls(t, seconds(5, 12)...)
		})
	})

	t.Run("deadline during a hanging poll", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			b.getCode(t)
			b.fake.Fail("token", faketwitch.Fault{Hang: true})
			ctx, cancel := context.WithTimeout(t.Context(), 8*time.Second)
			defer cancel()
			if err := b.wait(t, ctx, 8*time.Second); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	})

	t.Run("already done", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			b.getCode(t)
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := b.wait(t, ctx, 0); !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
			b.assertPolls(t)
		})
	})
}

func TestCodeFlowGetCodeAgain(t *testing.T) {
	t.Run("before waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			first := b.getCode(t)
			time.Sleep(time.Second)
			second := b.getCode(t)
			b.fake.ApproveDevice(first)
			b.at(7*time.Second, func() { b.fake.ApproveDevice(second) })
			if err := b.wait(t, t.Context(), 11*time.Second); err != nil {
				t.Fatal(err)
			}
			b.assertPolls(t, seconds(6, 11)...)
			dcs := b.deviceCodes()
			if dcs[0] != dcs[1] {
				t.Errorf("polled two device codes: %v", dcs)
			}
			if got := b.flow.ExpiresAt(); !got.IsZero() {
				t.Errorf("ExpiresAt = %v after success", got)
			}
		})
	})

	t.Run("while waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			b.getCode(t)
			b.at(7*time.Second, func() {
				second, _, err := b.flow.GetCode(t.Context())
				if err != nil {
					t.Error(err)
				}
				b.fake.ApproveDevice(second)
			})
			if err := b.wait(t, t.Context(), 12*time.Second); err != nil {
				t.Fatal(err)
			}
			// One poll of the first code, then the new code's interval from when it came.
			b.assertPolls(t, seconds(5, 12)...)
			if dcs := b.deviceCodes(); dcs[0] == dcs[1] {
				t.Error("went on polling the first code")
			}
		})
	})
	t.Run("while a poll is in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := newBubble(t, nil)
			b.getCode(t)
			// The first code's poll at 5 s is answered at 8 s with a denial, after GetCode at 6 s
			// replaced that code: the answer must not end the new flow.
			b.fake.Fail("token", faketwitch.Fault{Status: 400, Delay: 3 * time.Second, Count: 1,
				Body: `{"status":400,"error":"Bad Request","message":"access_denied"}`})
			b.at(6*time.Second, func() {
				second, _, err := b.flow.GetCode(t.Context())
				if err != nil {
					t.Error(err)
				}
				b.fake.ApproveDevice(second)
			})
			if err := b.wait(t, t.Context(), 13*time.Second); err != nil {
				t.Fatal(err)
			}
			b.assertPolls(t, seconds(5, 13)...)
		})
	})
}

func TestCodeFlowConcurrentWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := newBubble(t, nil)
		code := b.getCode(t)
		b.at(3*time.Second, func() {
			if _, err := b.flow.WaitForAuthComplete(t.Context()); err == nil || errors.Is(err, ErrFlowNotStarted) {
				t.Errorf("second WaitForAuthComplete: %v, want an error", err)
			}
			if got := time.Since(b.start); got != 3*time.Second {
				t.Errorf("second WaitForAuthComplete returned at %v, want at once", got)
			}
			b.fake.ApproveDevice(code)
		})
		if err := b.wait(t, t.Context(), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// TestCodeFlowPollCount checks that an approval arriving T after GetCode costs ceil(T/I) or
// ceil(T/I)+1 polls at interval I, never more.
func TestCodeFlowPollCount(t *testing.T) {
	for _, tc := range []struct{ T, I int }{
		{0, 5}, {1, 5}, {5, 5}, {7, 5}, {12, 5}, {60, 5}, {299, 5}, {1790, 5},
		{10, 1}, {10, 3}, {29, 7}, {90, 10},
	} {
		t.Run(fmt.Sprintf("T=%ds,I=%ds", tc.T, tc.I), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				b := newBubble(t, func(s *faketwitch.Server) { s.DeviceInterval = tc.I })
				code := b.getCode(t)
				b.at(time.Duration(tc.T)*time.Second, func() { b.fake.ApproveDevice(code) })
				if _, err := b.flow.WaitForAuthComplete(t.Context()); err != nil {
					t.Fatal(err)
				}
				polls := b.fake.CountGrant("urn:ietf:params:oauth:grant-type:device_code")
				lo := (tc.T + tc.I - 1) / tc.I
				t.Logf("approval after %ds at interval %ds: %d polls (ceil(T/I) = %d)", tc.T, tc.I, polls, lo)
				if polls != lo && polls != lo+1 {
					t.Errorf("approval after %ds at interval %ds: %d polls, want %d or %d", tc.T, tc.I, polls, lo, lo+1)
				}
			})
		})
	}
}

// TestCodeFlowRealTime runs the flow against the fake over loopback TCP on the real clock.
func TestCodeFlowRealTime(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 2 s")
	}
	c, fake := newTestClient(t)
	fake.DeviceInterval = 1
	f := NewCodeFlow(c, []Scope{ScopeChatRead})
	code, _, err := f.GetCode(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(1500 * time.Millisecond)
		if err := fake.ApproveDevice(code); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	tok, err := f.WaitForAuthComplete(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 1500*time.Millisecond || d > 5*time.Second {
		t.Errorf("took %v, want about 2s", d)
	}
	if n := fake.CountGrant(deviceGrantType); n != 2 && n != 3 { // ceil(1.5/1) or one more
		t.Errorf("%d polls, want 2 or 3", n)
	}
	v, err := c.ValidateToken(t.Context(), tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if v.UserID != faketwitch.UserID || v.ClientID != c.ClientID || !slices.Equal(v.Scopes, []Scope{ScopeChatRead}) {
		t.Errorf("validation = %+v", v)
	}
}

func TestCodeFlowZeroValue(t *testing.T) {
	if _, _, err := new(CodeFlow).GetCode(t.Context()); err == nil || !strings.Contains(err.Error(), "NewCodeFlow") {
		t.Errorf("GetCode on a zero CodeFlow: %v", err)
	}
}
