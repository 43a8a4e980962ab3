package twitchoauth

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
)

// TestBindTwoProcesses starts two processes that bind one token file at once, while Twitch has
// killed its access token: they refresh it once between them, and both end with the new token.
func TestBindTwoProcesses(t *testing.T) {
	if path := os.Getenv("TWITCHOAUTH_BIND_CHILD"); path != "" {
		bindChild(t, path, os.Getenv("TWITCHOAUTH_BIND_BASE"))
		return
	}
	e := newBindEnv(t)
	access, refresh := e.fake.IssueToken(e.c.ClientID, faketwitch.UserID, scopesToStrings(botScopes), 0)
	e.fake.ExpireAccessToken(access)
	e.write(t, access, refresh)
	// Slow answers make the two binds overlap for certain.
	e.fake.Fail("validate", faketwitch.Fault{Delay: 200 * time.Millisecond, Pass: true})

	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for range 2 {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBindTwoProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), "TWITCHOAUTH_BIND_CHILD="+e.path, "TWITCHOAUTH_BIND_BASE="+e.fake.BaseURL())
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var tokens []string
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v\n%s", i, err, outs[i])
		}
		for _, line := range strings.Split(outs[i].String(), "\n") {
			if tok, ok := strings.CutPrefix(line, "BOUND "); ok {
				tokens = append(tokens, tok)
			}
		}
	}
	if len(tokens) != 2 || tokens[0] != tokens[1] || tokens[0] == access {
		t.Errorf("the processes hold %q, want the same new token", tokens)
	}
	if n := e.fake.CountGrant("refresh_token"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
	if st := e.stored(t); len(tokens) > 0 && st.AccessToken != tokens[0] {
		t.Errorf("file holds %q", st.AccessToken)
	}
}

func bindChild(t *testing.T, path, base string) {
	c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	c.AuthBaseURL = base
	h := NewUserAuthenticationStorageHelper(c, botScopes)
	h.StoragePath = path
	h.AuthGenerator = func(context.Context, *Client, []Scope) (*oauth2.Token, error) {
		return nil, errors.New("a login was started")
	}
	src, err := h.Bind(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("BOUND " + tok.AccessToken)
}

// TestKeepValidated runs the hourly validation in fake time: a token Twitch killed is refreshed, an
// outage is reported and survived, and a dead refresh token ends the loop.
func TestKeepValidated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fake := faketwitch.New()
		c := NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
		c.AuthBaseURL = "http://fake.invalid/oauth2/"
		c.HTTPClient = &http.Client{Transport: &memTransport{fake: fake}}
		logs := new(bytes.Buffer)
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
		access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, nil, 24*time.Hour)
		src := NewUserTokenSource(c, &oauth2.Token{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(24 * time.Hour)}, nil)

		done := make(chan error, 1)
		go func() { done <- src.KeepValidated(t.Context(), time.Hour) }()
		hour := func() { time.Sleep(time.Hour); synctest.Wait() }

		hour()
		if n := fake.CountRequests("validate"); n != 1 {
			t.Fatalf("%d validations after an hour, want 1", n)
		}
		fake.ExpireAccessToken(access)
		hour()
		tok, _ := src.Token()
		if tok.AccessToken == access || fake.CountGrant("refresh_token") != 1 {
			t.Errorf("dead token not refreshed: %q, %d refreshes", tok.AccessToken, fake.CountGrant("refresh_token"))
		}
		fake.Fail("validate", faketwitch.Fault{Status: 503, Count: 1})
		hour()
		if !strings.Contains(logs.String(), "will try again") {
			t.Errorf("outage not reported:\n%s", logs)
		}
		select {
		case err := <-done:
			t.Fatalf("KeepValidated ended on an outage: %v", err)
		default:
		}
		fake.ExpireAccessToken(tok.AccessToken)
		fake.RevokeRefreshToken(tok.RefreshToken)
		hour()
		if err := <-done; !errors.Is(err, ErrInvalidRefreshToken) {
			t.Errorf("KeepValidated = %v, want ErrInvalidRefreshToken", err)
		}
		if strings.Contains(logs.String(), tok.AccessToken) || strings.Contains(logs.String(), tok.RefreshToken) {
			t.Errorf("log holds a token:\n%s", logs)
		}

		ctx, cancel := context.WithCancel(t.Context())
		go func() { done <- src.KeepValidated(ctx, time.Hour) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("after cancel: %v", err)
		}
	})
}

// TestFileStoreLockLease: a holder that never releases loses the lock after its lease.
func TestFileStoreLockLease(t *testing.T) {
	s := &FileStore{Path: filepath.Join(t.TempDir(), "t.json")}
	if _, err := s.Lock(t.Context(), "k", 50*time.Millisecond); err != nil { // never released
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, "k", time.Minute); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lock held by another: err = %v, want to wait until ctx ends", err)
	}
	unlock, err := s.Lock(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatalf("after the lease: %v", err)
	}
	other, err := s.Lock(t.Context(), "other-key", time.Minute)
	if err != nil {
		t.Fatalf("another key waits on this one: %v", err)
	}
	if err := errors.Join(unlock(), other()); err != nil {
		t.Fatal(err)
	}
}

// TestFileStoreCrashMidWrite kills a process in the middle of writing the token file (its
// temporary file written, not yet renamed): the temporary file it leaves holds a token, and the
// next write, by another process, removes it. The dead writer's lock does not hold that write up.
func TestFileStoreCrashMidWrite(t *testing.T) {
	if path := os.Getenv("TWITCHOAUTH_CRASH_CHILD"); path != "" {
		crashChild(t, path)
		return
	}
	dir := t.TempDir()
	s := &FileStore{Path: filepath.Join(dir, "token.json")}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFileStoreCrashMidWrite$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TWITCHOAUTH_CRASH_CHILD="+s.Path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := new(bytes.Buffer)
	cmd.Stderr = stderr
	if _, err := cmd.StdinPipe(); err != nil { // the child blocks on it
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	writing := false
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if sc.Text() == "WRITING" {
			writing = true
			break
		}
	}
	if !writing {
		cmd.Wait()
		t.Fatalf("the child never reached its rename:\n%s", stderr)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	left := tempFiles(t, dir)
	if len(left) != 1 {
		t.Fatalf("temporary files after the crash: %q, want the dead writer's", left)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, left[0])); !bytes.Contains(data, []byte("crashed-access")) {
		t.Fatalf("the dead writer's temporary file holds %q, want its token", data)
	}
	if err := s.Save(t.Context(), "", &StoredToken{AccessToken: "next-access", RefreshToken: "next-refresh"}); err != nil {
		t.Fatal(err)
	}
	if left := tempFiles(t, dir); len(left) > 0 {
		t.Errorf("temporary files after the next write: %q", left)
	}
	if st, err := s.Load(t.Context(), ""); err != nil || st.AccessToken != "next-access" {
		t.Errorf("Load = %+v, %v", st, err)
	}
}

// crashChild writes the token file and stops just before the rename, to be killed there.
func crashChild(t *testing.T, path string) {
	renameFile = func(string, string) error {
		fmt.Println("WRITING")
		io.Copy(io.Discard, os.Stdin) // until the parent kills this process
		return errors.New("the parent went away")
	}
	s := &FileStore{Path: path}
	s.Save(t.Context(), "", &StoredToken{AccessToken: "crashed-access", RefreshToken: "crashed-refresh"})
	t.Fatal("the child was not killed")
}

// tempFiles returns the names in dir of token files' temporary files.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			names = append(names, e.Name())
		}
	}
	return names
}
