package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Lock takes key's lock: an exclusive advisory lock on the token file's ".lock" file, polled
// until it is free or ctx is done. The lock is a lease: it is released after ttl even if unlock is
// never called, and at once if the process dies. A symbolic link at the lock file's path is an
// error: the lock never opens, creates or locks the file it points to.
func (s *FileStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
	l, err := s.lockLease(ctx, key, ttl)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// LockLease takes key's lock as Lock does and returns its lease, which Renew extends.
func (s *FileStore) LockLease(ctx context.Context, key string, ttl time.Duration) (Lease, error) {
	return s.lockLease(ctx, key, ttl)
}

func (s *FileStore) lockLease(ctx context.Context, key string, ttl time.Duration) (*fileLease, error) {
	path, err := s.file(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("twitchoauth: create token directory: %w", err)
	}
	if ttl <= 0 {
		ttl = DefaultLockTTL
	}
	f, err := acquireLockFile(ctx, path+".lock")
	if err != nil {
		return nil, err
	}
	l := &fileLease{f: f, ttl: ttl}
	l.timer = time.AfterFunc(ttl, func() { l.end() })
	return l, nil
}

// fileLease is a held lock file that is released after ttl unless renewed.
type fileLease struct {
	f     *os.File
	ttl   time.Duration
	timer *time.Timer

	mu    sync.Mutex
	ended bool  // the lock is released: by Unlock, or when the lease ran out
	err   error // what releasing it returned
}

// end releases the lock, once.
func (l *fileLease) end() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended = true
	l.err = releaseLockFile(l.f)
}

// Renew extends the lease to its ttl from now. Once the lease has run out, the lock may be
// another's: Renew then returns an error that Is ErrLeaseLost and does not take it back.
func (l *fileLease) Renew(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Stop is false once the timer fired: its end has run or is about to.
	if l.ended || !l.timer.Stop() {
		return fmt.Errorf("twitchoauth: renew lock of %s: %w", l.f.Name(), ErrLeaseLost)
	}
	l.timer.Reset(l.ttl)
	return nil
}

// Unlock releases the lock. It may be called more than once; after the lease ran out it does
// nothing and returns nil.
func (l *fileLease) Unlock() error {
	l.timer.Stop()
	l.end()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// lockForWrite takes the lock that writers of the token file at path hold while they write it,
// waiting until it is free or ctx is done, and returns its release. A writer holds it for the
// moment a write takes, and a dead one's is released by the system: so a writer holding it knows
// that a temporary file of path is a crashed writer's, and no other writer comes between its
// check of the file and its write.
func lockForWrite(ctx context.Context, path string) (release func(), err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("twitchoauth: create token directory: %w", err)
	}
	f, err := acquireLockFile(ctx, filepath.Join(dir, "."+filepath.Base(path)+".write.lock"))
	if err != nil {
		return nil, err
	}
	return func() { releaseLockFile(f) }, nil
}

// releaseLockFile lets go of the lock file f: it removes it first, while it still holds it, so
// that no lock file is left behind for a token at rest (where the system allows: see
// lockFilesRemoved). A waiter that had opened it finds, once it holds it, that it is no longer the
// file at its path, and starts again (see acquireLockFile).
func releaseLockFile(f *os.File) error {
	if lockFilesRemoved && isCurrent(f) {
		os.Remove(f.Name())
	}
	err := unlockFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// isCurrent reports whether f is still the file at its path.
func isCurrent(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	at, err := os.Lstat(f.Name())
	return err == nil && os.SameFile(fi, at)
}

// acquireLockFile opens the lock file at path and locks it, polling with jittered backoff (2 ms
// doubling to 100 ms) until it is free or ctx is done.
func acquireLockFile(ctx context.Context, path string) (*os.File, error) {
	wait := 2 * time.Millisecond
	for {
		f, err := openLockFile(path)
		if err != nil {
			return nil, err
		}
		ok, err := tryLockFile(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("twitchoauth: lock %s: %w", path, err)
		}
		if ok && (!lockFilesRemoved || isCurrent(f)) {
			return f, nil
		}
		if ok {
			// Its holder removed it as it let go, and the lock now lives in a new file at path.
			unlockFile(f)
			f.Close()
			continue
		}
		f.Close()
		t := time.NewTimer(wait + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("twitchoauth: lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// errLockSymlink: the lock file's path names a symbolic link (or another kind of link), which a
// lock never follows.
var errLockSymlink = errors.New("it is a symbolic link or another irregular file, which a lock file must not be")

// refuseLink returns an error when path is a symbolic link (or, on Windows, another reparse point
// such as a junction).
func refuseLink(path string) error {
	fi, err := os.Lstat(path)
	if err == nil && (fi.Mode()&fs.ModeSymlink != 0 || fi.Mode()&fs.ModeIrregular != 0) {
		return fmt.Errorf("twitchoauth: open lock file %s: %w", path, errLockSymlink)
	}
	return nil
}

// lockFileError describes the failure to open the lock file at path, saying so plainly when a
// symbolic link is in the way.
func lockFileError(path string, err error) error {
	if lerr := refuseLink(path); lerr != nil {
		return lerr
	}
	return fmt.Errorf("twitchoauth: open lock file: %w", err)
}
