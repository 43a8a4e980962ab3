//go:build windows

package twitchoauth

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// openLockFile opens (creating it if need be) the lock file at path, refusing a symbolic link (or
// another reparse point) there: a link planted there must not make the lock create, or lock, a
// file elsewhere. The check comes before the open, so a link planted in between is followed.
func openLockFile(path string) (*os.File, error) {
	if err := refuseLink(path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, lockFileError(path, err)
	}
	return f, nil
}

// tryLockFile takes an exclusive lock on f's first byte without waiting; ok is false when another
// holder has it.
func tryLockFile(f *os.File) (ok bool, err error) {
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY,
		0, 1, 0, new(windows.Overlapped))
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return false, nil
	}
	return err == nil, err
}

func unlockFile(f *os.File) error {
	return windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, new(windows.Overlapped))
}

// lockFilesRemoved: lock files stay, as a held file cannot be removed here.
const lockFilesRemoved = false
