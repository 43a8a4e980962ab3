package sqlstore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// replicaTimeout bounds each replica test: none may hang.
const replicaTimeout = 3 * time.Minute

// addUsers adds each user to a registry over store with a token of c's app (the fake issues it),
// then makes every token expire together, at Twitch and in the store.
func addUsers(t *testing.T, c *twitchoauth.Client, fake *faketwitch.Server, store *Store, ids []string) {
	t.Helper()
	adder := twitchoauth.NewUserTokens(c, store)
	for _, id := range ids {
		fake.AddUser(id, "user"+id, "")
		access, refresh := fake.IssueToken(c.ClientID, id, []string{"chat:read"}, 0)
		if _, err := adder.AddUserForToken(t.Context(), &oauth2.Token{AccessToken: access, RefreshToken: refresh}); err != nil {
			t.Fatal(err)
		}
	}
	storetest.ExpireStored(t, store, fake, ids)
	fake.ResetRequests()
}

// wantAgreed checks that the store holds, for each user, the token every replica returned, with
// no spending mark left on it.
func wantAgreed(t *testing.T, store *Store, ids []string, tokens [][]string) {
	t.Helper()
	for i, id := range ids {
		st, err := store.Load(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Spending != nil {
			t.Errorf("user %s: a spending mark is left on the stored pair", id)
		}
		for r := range tokens {
			if tokens[r][i] != st.AccessToken {
				t.Errorf("user %s: replica %d holds another token than the store", id, r)
			}
		}
	}
}

// TestUserTokensReplicasPostgres: five replicas of a service, each a UserTokens registry over a
// *sql.DB of its own to one PostgreSQL, serving 100 users of a public client (its refresh tokens
// work once): the users one replica added are seen by all after Sync; when the 100 tokens expire
// together and every replica asks for every user's token at once, Twitch sees exactly 100
// refreshes, no refresh token twice, and every replica holds the stored token.
func TestUserTokensReplicasPostgres(t *testing.T) {
	t.Parallel()
	srv := needPostgres(t)
	ctx, cancel := context.WithTimeout(t.Context(), replicaTimeout)
	defer cancel()
	c, fake := storetest.PublicTwitch(t)
	const users, replicas = 100, 5
	ids := storetest.UserIDs(5000, users)
	prefix := uniquePrefix()
	seeder := pgStore(t, srv, prefix)
	addUsers(t, c, fake, seeder, ids)
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 20 * time.Millisecond}) // replicas overlap for certain

	regs := make([]*twitchoauth.UserTokens, replicas)
	for r := range regs {
		regs[r] = twitchoauth.NewUserTokens(c, pgStore(t, srv, prefix))
		if err := regs[r].Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := regs[r].Users(); !slices.Equal(got, ids) {
			t.Fatalf("replica %d sees %d users, want the %d added elsewhere", r, len(got), users)
		}
	}
	tokens := make([][]string, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	begun := time.Now()
	for r := range regs {
		tokens[r] = make([]string, users)
		for i, id := range ids {
			wg.Go(func() {
				<-start
				src, err := regs[r].Source(id)
				if err == nil {
					var tok *oauth2.Token
					if tok, err = src.TokenContext(ctx); err == nil {
						tokens[r][i] = tok.AccessToken
					}
				}
				if err != nil {
					t.Errorf("replica %d, user %s: %v", r, id, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	t.Logf("%d replicas × %d users refreshed in %v", replicas, users, time.Since(begun).Round(time.Millisecond))
	storetest.WantNoReuse(t, fake, users)
	wantAgreed(t, seeder, ids, tokens)
}

// Environment of a replica process of TestUserTokensReplicasSQLite.
const (
	envReplicaFile   = "SQLSTORE_TEST_REPLICA_FILE"
	envReplicaTwitch = "SQLSTORE_TEST_REPLICA_TWITCH"
	envReplicaUsers  = "SQLSTORE_TEST_REPLICA_USERS"
)

// TestUserTokensReplicasSQLite: three processes, each a UserTokens registry over its own *sql.DB
// on one SQLite file, serving 100 users of a public client: when the 100 tokens expire together
// and every process asks for every user's token at once (a line on their standard input starts
// them together), Twitch sees exactly 100 refreshes, no refresh token twice, and every process
// holds the stored token.
func TestUserTokensReplicasSQLite(t *testing.T) {
	if path := os.Getenv(envReplicaFile); path != "" {
		replicaChild(t, path, os.Getenv(envReplicaTwitch), os.Getenv(envReplicaUsers))
		return
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), replicaTimeout)
	defer cancel()
	c, fake := storetest.PublicTwitch(t)
	const users, processes = 100, 3
	ids := storetest.UserIDs(6000, users)
	path := sqliteFile(t)
	seeder := sqliteStore(t, path)
	addUsers(t, c, fake, seeder, ids)
	fake.Fail("token", faketwitch.Fault{Pass: true, Delay: 20 * time.Millisecond})

	type child struct {
		cmd   *exec.Cmd
		stdin io.Closer
		lines chan string  // its standard output, closed at its end
		log   bytes.Buffer // its standard error
	}
	children := make([]*child, processes)
	for p := range children {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestUserTokensReplicasSQLite$", "-test.count=1")
		cmd.Env = append(os.Environ(), envChild+"=1", envReplicaFile+"="+path, envReplicaTwitch+"="+fake.BaseURL(),
			envReplicaUsers+"="+strings.Join(ids, ","))
		ch := &child{cmd: cmd, lines: make(chan string, users+10)}
		cmd.Stderr = &ch.log
		var err error
		if ch.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		go func() {
			defer close(ch.lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				ch.lines <- sc.Text()
			}
		}()
		children[p] = ch
	}
	// Each says READY once its registry holds every user.
	for p, ch := range children {
		select {
		case line := <-ch.lines:
			if line != "READY" {
				t.Fatalf("process %d: %q, want READY", p, line)
			}
		case <-ctx.Done():
			t.Fatalf("process %d never got ready", p)
		}
	}
	begun := time.Now()
	for _, ch := range children {
		ch.stdin.Close() // go
	}
	tokens := make([][]string, processes)
	for p, ch := range children {
		tokens[p] = make([]string, users)
		got := 0
		var other []string
		for line := range ch.lines {
			f := strings.Fields(line)
			if i := -1; len(f) == 3 && f[0] == "TOKEN" {
				if i = slices.Index(ids, f[1]); i >= 0 {
					tokens[p][i] = f[2]
					got++
					continue
				}
			}
			other = append(other, line)
		}
		if err := ch.cmd.Wait(); err != nil || got != users {
			t.Fatalf("process %d: %v, %d tokens of %d\n%s\n%s", p, err, got, users, strings.Join(other, "\n"), ch.log.String())
		}
	}
	t.Logf("%d processes × %d users refreshed in %v", processes, users, time.Since(begun).Round(time.Millisecond))
	storetest.WantNoReuse(t, fake, users)
	wantAgreed(t, seeder, ids, tokens)
}

// replicaChild is one process of TestUserTokensReplicasSQLite: a registry over the SQLite file at
// path, of the public client of the fake at base, that asks for each user's token once its
// standard input closes, and prints them.
func replicaChild(t *testing.T, path, base, users string) {
	ctx, cancel := context.WithTimeout(context.Background(), replicaTimeout)
	defer cancel()
	c := twitchoauth.NewClient(faketwitch.PublicClientID, "")
	c.AuthBaseURL = base
	store, err := Open(ctx, SQLite, path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	reg := twitchoauth.NewUserTokens(c, store)
	if err := reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ids := strings.Split(users, ",")
	if got := reg.Users(); len(got) != len(ids) {
		t.Fatalf("the registry holds %d users, want %d", len(got), len(ids))
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	out := bufio.NewWriter(os.Stdout)
	for _, id := range ids {
		wg.Go(func() {
			src, err := reg.Source(id)
			var tok *oauth2.Token
			if err == nil {
				tok, err = src.TokenContext(ctx)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("user %s: %w", id, err))
				return
			}
			fmt.Fprintf(out, "TOKEN %s %s\n", id, tok.AccessToken)
		})
	}
	wg.Wait()
	out.Flush()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}
