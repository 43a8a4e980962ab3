package twitchoauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// DefaultStoragePath is the token file of key "" in a [FileStore], and the one
// [UserAuthenticationStorageHelper] uses by default.
const DefaultStoragePath = "user_token.json"

// FileStore keeps each token in a JSON file of its own, in the format of [StoredToken] (which
// pyTwitchAPI reads too), written atomically with mode 0600. The token of key "" is the file at
// Path; any other key's is beside it, the key before the extension (user_token.json holds key "",
// user_token.12345.json key "12345"): [NewFileStore] keeps them in a directory of their own. A key
// that cannot be part of a file's name (one holding a path separator or a colon, or one that
// makes the name longer than 239 bytes) is an error. Locks are advisory file locks on a ".lock"
// file beside each token file, so they hold across processes; the operating system releases a
// dead process's lock.
//
// Beside the token file are also, while they are held, the lock that writers hold while they write
// it (a hidden ".write.lock" file) and the key's lock, and for a moment the temporary file of each
// write; the next write removes the temporary file of one that a crash cut short, which holds a
// token. Lock files are removed by their holders as they let go (except on Windows), so a token at
// rest is one file. A token file others can read is made private (mode 0600) when it is loaded,
// wherever the system allows it.
//
// With a Keyring, each file holds its access and refresh tokens sealed (see
// [Keyring.EncodeStoredToken]); without one, it is exactly the token file pyTwitchAPI reads.
//
// FileStore implements [LeaseLocker] and [ConditionalSaver].
type FileStore struct {
	// Path is the token file of key "". Defaults to DefaultStoragePath.
	Path string
	// Keyring, if set, seals the access and refresh tokens of every file written with its current
	// key, and opens files sealed with any of its keys; files written before it was set are read
	// as they are, and sealed at their next write. Defaults to none: pyTwitchAPI's plain file.
	Keyring *Keyring
}

// NewFileStore returns a FileStore that keeps its tokens in dir: user 12345's token in
// dir/user_token.12345.json, and key ""'s (the storage helper's) in dir/user_token.json. The
// directory is created (mode 0700) at the first write.
func NewFileStore(dir string) *FileStore {
	return &FileStore{Path: filepath.Join(dir, DefaultStoragePath)}
}

// maxTokenFileName caps the name of a key's token file: its temporary files' names add 16 bytes
// to it ("." before, ".tmp-" and up to 10 digits after), and most file systems take a name of 255
// bytes at most.
const maxTokenFileName = 255 - 16

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
		return "", fmt.Errorf("twitchoauth: key %s cannot name a file", QuoteKey(key))
	}
	ext := filepath.Ext(path)
	file := strings.TrimSuffix(path, ext) + "." + key + ext
	if n := len(filepath.Base(file)); n > maxTokenFileName {
		return "", fmt.Errorf("twitchoauth: key %s cannot name a file: the name would be %d bytes, more than %d", QuoteKey(key), n, maxTokenFileName)
	}
	return file, nil
}

// Load reads the token stored under key. A token file that others may read (a pyTwitchAPI file
// is written with the default mode, often 0644) is made private first, except on Windows, which
// has no such mode bits; when that fails (a read-only mount, another user's file), Load still reads
// it.
func (s *FileStore) Load(ctx context.Context, key string) (*StoredToken, error) {
	path, err := s.file(key)
	if err != nil {
		return nil, err
	}
	st, err := s.loadTokenFile(key, path, true)
	return st, err
}

// loadTokenFile reads and decodes key's token file at path, making it private first when private
// is set. A sealed file the Keyring cannot open is an error that Is ErrCannotUnseal.
func (s *FileStore) loadTokenFile(key, path string, private bool) (*StoredToken, error) {
	data, err := readFileCapped(path, MaxStoredTokenSize, private)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrTokenNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: read token file: %w", err)
	}
	st, err := s.Keyring.DecodeStoredToken(key, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// readFileCapped reads at most limit bytes of path; with private, it first takes the permission
// to read it away from group and others where it can.
func readFileCapped(path string, limit int64, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if private && runtime.GOOS != "windows" {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			f.Chmod(fi.Mode().Perm() &^ 0o077) // best effort: see Load
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(data)) > limit {
		err = fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, err
}

// Save writes tok under key atomically: a temporary file in the same directory, synced, then
// renamed over the old one. A missing directory is created (mode 0700). Writers of one token file
// take turns, across processes, and each removes what writers that crashed left behind. A token
// whose file would be larger than [MaxStoredTokenSize] is refused, and nothing is written.
func (s *FileStore) Save(ctx context.Context, key string, tok *StoredToken) error {
	path, err := s.file(key)
	if err != nil {
		return err
	}
	data, err := s.encodeTokenFile(key, tok)
	if err != nil {
		return err
	}
	release, err := lockForWrite(ctx, path)
	if err != nil {
		return err
	}
	defer release()
	return writeFileAtomic(path, data)
}

// SaveIf writes next under key as Save does, but only if the token file still holds prev's access
// and refresh tokens and spending mark; otherwise it writes nothing and returns an error that Is
// [ErrTokenChanged]. The check and the write are one step for every writer of the file, in any
// process. A sealed file is opened before it is compared; one the Keyring cannot open is an error
// that Is [ErrCannotUnseal], not a change, and is left as it is.
func (s *FileStore) SaveIf(ctx context.Context, key string, prev, next *StoredToken) error {
	path, err := s.file(key)
	if err != nil {
		return err
	}
	if prev == nil {
		return errors.New("twitchoauth: save token: SaveIf needs the token it replaces")
	}
	data, err := s.encodeTokenFile(key, next)
	if err != nil {
		return err
	}
	release, err := lockForWrite(ctx, path)
	if err != nil {
		return err
	}
	defer release()
	cur, err := s.loadTokenFile(key, path, false)
	if errors.Is(err, ErrTokenNotFound) || errors.Is(err, ErrTokenCorrupt) {
		return fmt.Errorf("%w: %w", ErrTokenChanged, err)
	}
	if err != nil {
		return err
	}
	if !sameStored(cur, prev) {
		return fmt.Errorf("%w: %s holds another pair", ErrTokenChanged, path)
	}
	return writeFileAtomic(path, data)
}

// encodeTokenFile returns key's tok in the token file's format, sealed when the store has a
// Keyring: no more than MaxStoredTokenSize bytes, which Load reads, or an error that gives its size
// (never its contents, which hold secrets).
func (s *FileStore) encodeTokenFile(key string, tok *StoredToken) ([]byte, error) {
	data, err := s.Keyring.encodeRecord(key, tok, indentJSON)
	if err != nil {
		return nil, fmt.Errorf("twitchoauth: save token: %w", err)
	}
	data = append(data, '\n')
	if len(data) > MaxStoredTokenSize {
		return nil, fmt.Errorf("twitchoauth: save token: the token file would be %d bytes, more than the %d a store takes", len(data), MaxStoredTokenSize)
	}
	return data, nil
}

// indentJSON is the token file's JSON: indented by two spaces.
func indentJSON(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") }

// renameFile is os.Rename; tests replace it to simulate a crash before the rename.
var renameFile = os.Rename

// tempPrefix starts the name of every temporary file of path's writes; os.CreateTemp ends it with
// digits.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// writeFileAtomic replaces path with data so that a reader, or a crash at any moment, sees the old
// contents or the new, never a mix; the file has mode 0600. The caller holds path's write lock
// (lockForWrite), so any temporary file of path is a dead writer's, and is removed.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("twitchoauth: create token directory: %w", err)
	}
	removeLeftovers(path)
	f, err := os.CreateTemp(dir, tempPrefix(path)+"*")
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

// removeLeftovers removes the temporary files of path's writes that a crash left behind: a token
// would otherwise stay in them for good. Only names os.CreateTemp gives them are touched (the
// prefix, then digits), so another key's files, whose names may start alike, are left alone.
func removeLeftovers(path string) {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := tempPrefix(path)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
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

// Delete removes key's token file; a missing one is not an error. Its lock files are removed by
// their holders as they let go (where the system allows it: not on Windows), so a removed user
// leaves nothing behind.
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
	var keys []string
	err := s.tokenFiles(func(key string, _ fs.DirEntry) {
		if key != "" {
			keys = append(keys, key)
		}
	})
	return keys, err
}

// tokenFiles calls fn with each token file in Path's directory, and its key: Path's own (key "")
// and those beside it, not lock or temporary files. A directory that does not exist holds none.
func (s *FileStore) tokenFiles(fn func(key string, e fs.DirEntry)) error {
	path, err := s.file("")
	if err != nil {
		return err
	}
	ext := filepath.Ext(path)
	base := filepath.Base(path)
	prefix := strings.TrimSuffix(base, ext) + "."
	entries, err := os.ReadDir(filepath.Dir(path))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("twitchoauth: list token files: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() {
			continue
		}
		if name == base {
			fn("", e)
			continue
		}
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ext) ||
			len(name) <= len(prefix)+len(ext) || (ext == "" && strings.HasSuffix(name, ".lock")) {
			continue
		}
		key := name[len(prefix) : len(name)-len(ext)]
		if f, err := s.file(key); err != nil || filepath.Base(f) != name {
			continue
		}
		fn(key, e)
	}
	return nil
}
