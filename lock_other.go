//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package twitchoauth

import (
	"os"
	"sync"
)

// openLockFile opens (creating it if need be) the lock file at path, refusing a symbolic link
// there: a link planted there must not make the lock create a file elsewhere. The check comes
// before the open, so a link planted in between is followed.
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

// On systems without flock or LockFileEx, locks hold between the goroutines of one process only.
var (
	heldMu sync.Mutex
	held   = map[string]bool{}
)

func tryLockFile(f *os.File) (bool, error) {
	heldMu.Lock()
	defer heldMu.Unlock()
	if held[f.Name()] {
		return false, nil
	}
	held[f.Name()] = true
	return true, nil
}

func unlockFile(f *os.File) error {
	heldMu.Lock()
	defer heldMu.Unlock()
	delete(held, f.Name())
	return nil
}

// lockFilesRemoved: lock files stay, as a held file cannot be removed here.
const lockFilesRemoved = false
