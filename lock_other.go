//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package twitchoauth

import (
	"os"
	"sync"
)

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
