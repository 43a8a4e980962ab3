package sqlstore

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twitchoauth/twitchoauth"
)

// openers is how many replicas open one new SQLite file at once.
const openers = 8

// firstUse opens the SQLite file at path as a replica does (with Open, or with New over a *sql.DB
// of its own when own is set), then saves a token under key and reads it back.
func firstUse(ctx context.Context, path, key string, own bool) error {
	var s *Store
	if own {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			return err
		}
		defer db.Close()
		s = New(db, SQLite)
	} else {
		var err error
		if s, err = Open(ctx, SQLite, path); err != nil {
			return err
		}
		defer s.Close()
	}
	if err := s.Save(ctx, key, &twitchoauth.StoredToken{AccessToken: "a-" + key}); err != nil {
		return err
	}
	st, err := s.Load(ctx, key)
	if err != nil {
		return err
	}
	if st.AccessToken != "a-"+key {
		return fmt.Errorf("read back %q", st.AccessToken)
	}
	return nil
}

// TestSQLiteOpenTogether: replicas that open one new SQLite file at the same moment, each with a
// *sql.DB of its own, all open it, create the tables between them and store a token, whether
// they are goroutines or processes: the first of them to put the file in WAL mode holds its lock
// meanwhile, and the others wait for it as they wait for any write.
func TestSQLiteOpenTogether(t *testing.T) {
	if path := os.Getenv(envOpenFile); path != "" {
		openChild(t, path)
		return
	}
	t.Parallel()
	for _, tc := range []struct {
		name string
		own  bool
	}{{"Open", false}, {"New", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			path := sqliteFile(t)
			start := make(chan struct{})
			errs := make(chan error, openers)
			var wg sync.WaitGroup
			for i := range openers {
				wg.Go(func() {
					<-start
					errs <- firstUse(ctx, path, strconv.Itoa(i), tc.own)
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("a replica opening the new file with the others: %v", err)
				}
			}
		})
	}

	t.Run("Processes", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		path := sqliteFile(t)
		type child struct {
			cmd   *exec.Cmd
			stdin io.WriteCloser
			lines *bufio.Reader
		}
		var children []child
		for range openers / 2 {
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSQLiteOpenTogether$", "-test.count=1")
			cmd.Env = append(os.Environ(), envChild+"=1", envOpenFile+"="+path)
			cmd.Stderr = os.Stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			children = append(children, child{cmd, stdin, bufio.NewReader(stdout)})
		}
		for i, c := range children {
			if line, err := c.lines.ReadString('\n'); line != "READY\n" {
				t.Fatalf("process %d said %q, %v; want READY", i, line, err)
			}
		}
		// Every process waits on its stdin: closing them all lets them go at once, beside the
		// goroutines of this one.
		start := make(chan struct{})
		errs := make(chan error, openers/2)
		var wg sync.WaitGroup
		for i := range openers / 2 {
			wg.Go(func() {
				<-start
				errs <- firstUse(ctx, path, "g"+strconv.Itoa(i), false)
			})
		}
		for _, c := range children {
			c.stdin.Close()
		}
		close(start)
		for i, c := range children {
			line, _ := c.lines.ReadString('\n')
			if err := c.cmd.Wait(); err != nil || line != "OPENED\n" {
				t.Errorf("process %d opening the new file with the others said %q, %v", i, line, err)
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("a goroutine opening the new file with the processes: %v", err)
			}
		}
	})
}

// envOpenFile names the SQLite file that a process of TestSQLiteOpenTogether opens.
const envOpenFile = "SQLSTORE_TEST_OPEN_FILE"

// openChild is a process of TestSQLiteOpenTogether: it says READY, opens the file once its stdin
// is closed, and says OPENED, or the error.
func openChild(t *testing.T, path string) {
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := firstUse(ctx, path, "p"+strconv.Itoa(os.Getpid()), false); err != nil {
		fmt.Println(err)
		t.Fatal(err)
	}
	fmt.Println("OPENED")
}
