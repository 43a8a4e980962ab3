//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package twitchoauth

import (
	"errors"
	"os"
	"syscall"
)

// openLockFile opens (creating it if need be) the lock file at path without following a symbolic
// link: a link planted there must not make the lock create, or lock, a file elsewhere.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, lockFileError(path, err) // ELOOP on most systems, EMLINK or EFTYPE on some BSDs
	}
	return f, nil
}

// tryLockFile takes an exclusive flock on f without waiting; ok is false when another holder has it.
func tryLockFile(f *os.File) (ok bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return err == nil, err
}

func unlockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// lockFilesRemoved: a lock file is removed by its holder when it lets go (see releaseLockFile), so
// that a token at rest is one file. Safe where a held file can be unlinked and a waiter can tell
// that the file it locked is no longer the one at the path.
const lockFilesRemoved = true
