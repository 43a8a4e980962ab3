package twitchoauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// FileStore keeps each token in a JSON file of its own, in the format of [StoredToken] (which
// pyTwitchAPI reads too), written atomically with mode 0600. The token of key "" is the file at
// Path; any other key's is beside it, the key before the extension (user_token.json holds key "",
// user_token.12345.json key "12345"). Locks are advisory file locks on a ".lock" file beside each
// token file, so they hold across processes; the operating system releases a dead process's lock.
type FileStore struct {
	// Path is the token file of key "". Defaults to DefaultStoragePath.
	Path string
}

// maxTokenFileSize caps what Load reads: a token file is a few hundred bytes.
const maxTokenFileSize = 1 << 16

// file returns the token file of key.
func (s *FileStore) file(key string) (string, error) {
	path := s.Path
	if path == "" {
		path = DefaultStoragePath
	}
	if key == "" {
		return path, nil
	}
	if key == "." || key == ".." || strings.ContainsAny(key, `/\:`+"\x00") {
		return "", fmt.Errorf("twitchoauth: key %q cannot name a file", key)
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + "." + key + ext, nil
}

// Load reads the token stored under key.
func (s *FileStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	path, err := s.file(key)
	if err != nil {
		return nil, err
	}
	data, err := readFileCapped(path, maxTokenFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrTokenNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: read token file: %w", err)
	}
	st, err := DecodeStoredToken(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func readFileCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, err
}

// Save writes tok under key atomically: a temporary file in the same directory, synced, then
// renamed over the old one. A missing directory is created (mode 0700).
func (s *FileStore) Save(ctx context.Context, key string, tok *StoredToken) error {
	path, err := s.file(key)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(tok, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// renameFile is os.Rename; tests replace it to simulate a crash before the rename.
var renameFile = os.Rename

// writeFileAtomic replaces path with data so that a reader, or a crash at any moment, sees the old
// contents or the new, never a mix; the file has mode 0600.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("twitchoauth: create token directory: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("twitchoauth: write token file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("twitchoauth: write token file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("twitchoauth: write token file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("twitchoauth: write token file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("twitchoauth: write token file: %w", err)
	}
	if err := renameFile(tmp, path); err != nil {
		return fmt.Errorf("twitchoauth: write token file: %w", err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable where the system allows it (not on Windows).
func syncDir(dir string) {
	if runtime.GOOS == "windows" {
		return
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Lock takes key's lock: an exclusive advisory lock on the token file's ".lock" file, polled
// until it is free or ctx is done. The lock is a lease: it is released after ttl even if unlock is
// never called, and at once if the process dies.
func (s *FileStore) Lock(ctx context.Context, key string, ttl time.Duration) (func() error, error) {
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
	lockPath := path + ".lock"
	wait := 2 * time.Millisecond
	for {
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("twitchoauth: open lock file: %w", err)
		}
		ok, err := tryLockFile(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("twitchoauth: lock %s: %w", lockPath, err)
		}
		if ok {
			return leaseRelease(f, ttl), nil
		}
		f.Close()
		t := time.NewTimer(wait + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// leaseRelease returns the unlock function of a held lock file, and makes sure the lock is
// released after ttl if unlock has not been called by then.
func leaseRelease(f *os.File, ttl time.Duration) func() error {
	var once sync.Once
	var err error
	release := func() {
		err = unlockFile(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	timer := time.AfterFunc(ttl, func() { once.Do(release) })
	return func() error {
		timer.Stop()
		once.Do(release)
		return err
	}
}

// Delete removes key's token file; a missing one is not an error. The ".lock" file stays: a
// process may be waiting on it, and a lock on a removed file would not exclude a new one.
func (s *FileStore) Delete(ctx context.Context, key string) error {
	path, err := s.file(key)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("twitchoauth: delete token file: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// Keys returns the keys of the token files beside Path ("user_token.<key>.json"), not the key ""
// of Path itself, nor lock or temporary files. When Path has no extension, a key ending in
// ".lock" cannot be told from a lock file and is not listed.
func (s *FileStore) Keys(ctx context.Context) ([]string, error) {
	path, err := s.file("")
	if err != nil {
		return nil, err
	}
	ext := filepath.Ext(path)
	prefix := strings.TrimSuffix(filepath.Base(path), ext) + "."
	entries, err := os.ReadDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: list token files: %w", err)
	}
	var keys []string
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ext) ||
			len(name) <= len(prefix)+len(ext) || (ext == "" && strings.HasSuffix(name, ".lock")) {
			continue
		}
		key := name[len(prefix) : len(name)-len(ext)]
		if f, err := s.file(key); err != nil || filepath.Base(f) != name {
			continue
		}
		keys = append(keys, key)
	}
	return keys, nil
}
