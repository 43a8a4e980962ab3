package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
)

// Reseal writes again, sealed with the Keyring's current key, every token file of the store
// (Path's own, and those beside it) that is not sealed with it: files sealed with an older key,
// and files written before the store had a Keyring. Each file is read again and rewritten under
// the lock its writers take, so that a write made meanwhile is never undone. It returns how many
// files it wrote. Once it returns without error, and every process runs with the new Keyring, no
// file needs the older keys: drop them. Files it cannot open are left as they are, and make its
// error: one line for all of them that Is [ErrCannotUnseal] (see [JoinStoreErrors]).
func (s *FileStore) Reseal(ctx context.Context) (int, error) {
	if s.Keyring == nil {
		return 0, errors.New("twitchoauth: reseal: the FileStore has no Keyring")
	}
	var keys []string
	if err := s.tokenFiles(func(key string, _ fs.DirEntry) { keys = append(keys, key) }); err != nil {
		return 0, fmt.Errorf("twitchoauth: reseal: %w", err)
	}
	written, err := ResealEach(ctx, keys, s.reseal)
	if err != nil {
		return written, fmt.Errorf("twitchoauth: reseal: %w", err)
	}
	return written, nil
}

// reseal writes key's file again sealed with the current key, unless it already is, and reports
// whether it wrote it.
func (s *FileStore) reseal(ctx context.Context, key string) (bool, error) {
	path, err := s.file(key)
	if err != nil {
		return false, err
	}
	release, err := lockForWrite(ctx, path)
	if err != nil {
		return false, err
	}
	defer release()
	data, err := readFileCapped(path, MaxStoredTokenSize, false)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // deleted meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("twitchoauth: read token file: %w", err)
	}
	if id, sealed := SealedKeyID(data); sealed && id == s.Keyring.Current() {
		return false, nil // written meanwhile, or already
	}
	st, err := s.Keyring.DecodeStoredToken(key, data)
	if err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	next, err := s.encodeTokenFile(key, st)
	if err != nil {
		return false, err
	}
	return true, writeFileAtomic(path, next)
}
