package sqlstore

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/faketwitch"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// benchDialects runs f as a sub-benchmark per dialect, each replica (connect) on a *sql.DB of
// its own over the same tables: PostgreSQL on the shared server (fsync and synchronous commits
// on, its defaults), SQLite on a file in WAL mode (synchronous FULL, its default).
func benchDialects(b *testing.B, f func(b *testing.B, connect func(b *testing.B) *Store)) {
	b.Run("Postgres", func(b *testing.B) {
		srv := needPostgres(b)
		prefix := uniquePrefix()
		f(b, func(b *testing.B) *Store { return pgStore(b, srv, prefix) })
	})
	b.Run("SQLite", func(b *testing.B) {
		path := sqliteFile(b)
		f(b, func(b *testing.B) *Store { return sqliteStore(b, path) })
	})
}

// BenchmarkLoad measures Load of one stored token: one SELECT by primary key, and the JSON
// decoded; sealed, the pair opened too.
func BenchmarkLoad(b *testing.B) {
	benchDialects(b, func(b *testing.B, connect func(b *testing.B) *Store) {
		for _, sealed := range []bool{false, true} {
			b.Run(map[bool]string{false: "plain", true: "sealed"}[sealed], func(b *testing.B) {
				s := connect(b)
				if sealed {
					s.Keyring = testKeyring(b, "k1", "k1")
				}
				st := benchToken(0)
				if err := s.Save(b.Context(), "u", st); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if _, err := s.Load(b.Context(), "u"); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// BenchmarkSave measures one save of a stored user's token: one upsert, a commit. Parallel runs
// eight savers at once, each on a user of its own, as a registry's validations run: their commits
// share PostgreSQL's group commit, and on SQLite take turns.
func BenchmarkSave(b *testing.B) {
	benchDialects(b, func(b *testing.B, connect func(b *testing.B) *Store) {
		s := connect(b)
		b.Run("serial", func(b *testing.B) {
			for i := range b.N {
				if err := s.Save(b.Context(), "u", benchToken(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("parallel", func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				key := "p" + strconv.FormatInt(next.Add(1), 10)
				for i := 0; pb.Next(); i++ {
					if err := s.Save(b.Context(), key, benchToken(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	})
}

// BenchmarkSaveIf measures one fenced save: the row read, compared, and updated where its version
// is still the one read (a commit).
func BenchmarkSaveIf(b *testing.B) {
	benchDialects(b, func(b *testing.B, connect func(b *testing.B) *Store) {
		s := connect(b)
		prev := benchToken(0)
		if err := s.Save(b.Context(), "u", prev); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			next := benchToken(i + 1)
			if err := s.SaveIf(b.Context(), "u", prev, next); err != nil {
				b.Fatal(err)
			}
			prev = next
		}
	})
}

// benchToken is a token of the size Twitch's are.
func benchToken(i int) *twitchoauth.StoredToken {
	return &twitchoauth.StoredToken{AccessToken: fmt.Sprintf("%030d", i), RefreshToken: fmt.Sprintf("r%049d", i),
		Expiry: time.Now().Add(4 * time.Hour).Round(0), Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead, "chat:edit"},
		UserID: "12345678", Login: "somebroadcaster", ClientID: faketwitch.ClientID}
}

// BenchmarkStoreRefresh measures one refresh of a stored token under its lock, against the fake
// over loopback: for a confidential client (lock, load, refresh, fenced save, unlock) and for a
// public one, whose write-ahead mark adds one fenced save. The difference is what the mark costs
// per refresh.
func BenchmarkStoreRefresh(b *testing.B) {
	benchDialects(b, func(b *testing.B, connect func(b *testing.B) *Store) {
		for _, public := range []bool{false, true} {
			b.Run(map[bool]string{false: "confidential", true: "public"}[public], func(b *testing.B) {
				c, fake := storetest.Twitch(b)
				if public {
					c, fake = storetest.PublicTwitch(b)
				}
				store := connect(b)
				key := strconv.FormatInt(serial.Add(1), 10)
				access, refresh := fake.IssueToken(c.ClientID, faketwitch.UserID, []string{"chat:read"}, 0)
				st := &twitchoauth.StoredToken{AccessToken: access, RefreshToken: refresh, UserID: faketwitch.UserID}
				if err := store.Save(b.Context(), key, st); err != nil {
					b.Fatal(err)
				}
				src := twitchoauth.NewStoreTokenSource(c, store, key, nil)
				tok, err := src.Token()
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if tok, err = src.ForceRefresh(b.Context(), tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// validationUsers is how many users BenchmarkValidation keeps.
const validationUsers = 10000

// validationEnv is the seeded store and fake of one dialect, kept across BenchmarkValidation's
// runs of the same binary.
type validationEnv struct {
	c    *twitchoauth.Client
	fake *faketwitch.Server
	hits *countValidations
	open func(b *testing.B) *Store
}

var (
	validationMu   sync.Mutex
	validationEnvs = map[Dialect]*validationEnv{}
)

// BenchmarkValidation measures how many users one database holds for the hourly validation that
// Twitch requires: a UserTokens registry with MaxInFlight 8 validates 10,000 stored users as fast
// as it can (a period of a second: every user is always due), the fake answering at once over
// loopback, until b.N validations are done. Each validation is what Run does for a user: a load,
// the lock (a row), a load under it, Twitch's validate, a fenced save of when, and the unlock.
// It reports validations a second, the users that makes for an hourly validation, and the CPU
// of 10,000 validations: this process's (the registry, the driver and the fake), and, on
// PostgreSQL, the server's. Run it with -benchtime=10000x:
//
//	go test -run '^$' -bench BenchmarkValidation -benchtime 10000x
func BenchmarkValidation(b *testing.B) {
	for _, d := range []Dialect{Postgres, SQLite} {
		b.Run(d.String(), func(b *testing.B) {
			env := validationSetup(b, d)
			reg := twitchoauth.NewUserTokens(env.c, env.open(b))
			reg.MaxInFlight = 8
			reg.ValidateEvery = time.Second
			reg.SyncEvery = time.Hour
			if err := reg.Sync(b.Context()); err != nil {
				b.Fatal(err)
			}
			if n := len(reg.Users()); n != validationUsers {
				b.Fatalf("%d users in the store, want %d", n, validationUsers)
			}
			reached := env.hits.arm(int64(b.N))
			cpu0, pg0 := processCPU(), postgresCPU(d)
			b.ResetTimer()
			start := time.Now()
			ctx, cancel := context.WithCancel(b.Context())
			ran := make(chan struct{})
			go func() {
				defer close(ran)
				reg.Run(ctx)
			}()
			select {
			case <-reached:
			case <-time.After(10 * time.Minute):
				b.Fatalf("%d of %d validations in 10 minutes", env.hits.n.Load(), b.N)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			cpu, pg := processCPU()-cpu0, postgresCPU(d)-pg0
			cancel()
			<-ran
			rate := float64(b.N) / elapsed.Seconds()
			per10k := func(d time.Duration) float64 { return d.Seconds() / float64(b.N) * 10000 }
			b.ReportMetric(rate, "validations/s")
			b.ReportMetric(rate*3600, "users/hourly")
			b.ReportMetric(per10k(cpu), "cpu-s/10k")
			if d == Postgres {
				b.ReportMetric(per10k(pg), "pg-cpu-s/10k")
			}
			if b.N < 1000 {
				return // a warm-up run of the benchmark's: too few to say anything
			}
			b.Logf("%v: %d validations of %d users in %v: %.0f a second, so %.0f users validated hourly; CPU per 10,000: %.2f s in this process, %.2f s in PostgreSQL",
				d, b.N, validationUsers, elapsed.Round(time.Millisecond), rate, rate*3600, per10k(cpu), per10k(pg))
		})
	}
}

// validationSetup returns dialect d's environment, seeding it first: 10,000 users with fresh
// tokens the fake knows, written in one transaction.
func validationSetup(b *testing.B, d Dialect) *validationEnv {
	validationMu.Lock()
	defer validationMu.Unlock()
	if env := validationEnvs[d]; env != nil {
		return env
	}
	env := &validationEnv{fake: faketwitch.New(), hits: &countValidations{}}
	base := env.fake.Start() // kept for the binary's life, as the environment is
	env.c = twitchoauth.NewClient(faketwitch.ClientID, faketwitch.ClientSecret)
	env.c.AuthBaseURL = base
	env.c.HTTPClient = &http.Client{Transport: env.hits, Timeout: 10 * time.Second}
	switch d {
	case Postgres:
		srv := needPostgres(b)
		prefix := uniquePrefix()
		env.open = func(b *testing.B) *Store { return pgStore(b, srv, prefix) }
	case SQLite:
		dir, err := os.MkdirTemp("", "sqlstore-bench-")
		if err != nil {
			b.Fatal(err)
		}
		path := filepath.Join(dir, "tokens.db")
		env.open = func(b *testing.B) *Store { return sqliteStore(b, path) }
	}
	s := env.open(b)
	if _, err := s.Keys(b.Context()); err != nil { // the tables
		b.Fatal(err)
	}
	tx, err := s.DB.BeginTx(b.Context(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	q := s.q.Load()
	for i := range validationUsers {
		id := strconv.Itoa(100000 + i)
		env.fake.AddUser(id, "user"+id, "")
		access, refresh := env.fake.IssueToken(faketwitch.ClientID, id, []string{"chat:read"}, 0)
		st := &twitchoauth.StoredToken{AccessToken: access, RefreshToken: refresh, Expiry: time.Now().Add(4 * time.Hour),
			Scopes: []twitchoauth.Scope{twitchoauth.ScopeChatRead}, UserID: id, ClientID: faketwitch.ClientID}
		token, sealed, keyID, err := s.encode(id, st)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(b.Context(), q.save, id, token, sealed, keyID); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	validationEnvs[d] = env
	return env
}

// countValidations is a transport that counts Twitch's answers to validations, and says when a
// count is reached.
type countValidations struct {
	n       atomic.Int64
	mu      sync.Mutex
	want    int64
	reached chan struct{}
}

// arm resets the count, and returns a channel closed when it reaches want.
func (c *countValidations) arm(want int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n.Store(0)
	c.want, c.reached = want, make(chan struct{})
	return c.reached
}

func (c *countValidations) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusOK && strings.HasSuffix(req.URL.Path, "/validate") {
		n := c.n.Add(1)
		c.mu.Lock()
		if n == c.want {
			close(c.reached)
		}
		c.mu.Unlock()
	}
	return resp, err
}

// processCPU returns the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU returns the CPU time the shared PostgreSQL server has used: its postmaster's, its
// children's that have exited, and its running children's (read from /proc; zero elsewhere).
func postgresCPU(d Dialect) time.Duration {
	if d != Postgres || shared == nil {
		return 0
	}
	pidFile, err := os.ReadFile(filepath.Join(shared.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	master, _ := strconv.Atoi(strings.SplitN(string(pidFile), "\n", 2)[0])
	stat := func(pid string) []string {
		data, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return nil
		}
		_, rest, _ := strings.Cut(string(data), ") ") // the command may hold spaces
		return strings.Fields(rest)                   // rest[0] is field 3 (state)
	}
	ticks := func(f []string, fields ...int) int64 {
		var n int64
		for _, i := range fields {
			if i-3 < len(f) {
				v, _ := strconv.ParseInt(f[i-3], 10, 64)
				n += v
			}
		}
		return n
	}
	var total int64
	total += ticks(stat(strconv.Itoa(master)), 14, 15, 16, 17) // utime, stime, cutime, cstime
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		if f := stat(p.Name()); len(f) > 1 && f[1] == strconv.Itoa(master) { // field 4: ppid
			total += ticks(f, 14, 15)
		}
	}
	return time.Duration(total) * time.Second / 100 // USER_HZ
}
