package twitchoauth

import (
	"context"
	"errors"
	"io/fs"
	"time"
)

// fileWatchEvery is how often [FileStore.WatchChanges] looks at the token files.
const fileWatchEvery = 200 * time.Millisecond

// fileStamp is what tells one write of a token file from another: every write replaces the file
// (a rename), with a new modification time.
type fileStamp struct {
	mod  time.Time
	size int64
}

// WatchChanges reports the keys whose token file was written or removed, by this process or
// another, as [ChangeWatcher] says. A file system tells no one of a change by itself: it lists
// the directory's token files every 200 ms and compares their modification times and sizes, so a
// change is reported within 200 ms (and a write and another within the file system's time
// resolution, with the same size, may count as one). It costs a directory listing each time, which
// suits the few processes of one machine that a FileStore serves. A directory it cannot list is
// listed again at the next tick, and followed by the empty key once it can be.
func (s *FileStore) WatchChanges(ctx context.Context, changed func(key string)) error {
	seen, err := s.stamps()
	lost := err != nil
	if !lost {
		changed("")
	}
	t := time.NewTicker(fileWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now, err := s.stamps()
		switch {
		case err != nil:
			lost = true
			continue
		case lost:
			lost = false
			changed("") // what changed meanwhile is found by looking again at everything
		default:
			for key, st := range now {
				if seen[key] != st {
					changed(key)
				}
			}
			for key := range seen {
				if _, ok := now[key]; !ok {
					changed(key)
				}
			}
		}
		seen = now
	}
}

// stamps returns the stamp of each token file, by key.
func (s *FileStore) stamps() (map[string]fileStamp, error) {
	out := map[string]fileStamp{}
	var infoErr error
	err := s.tokenFiles(func(key string, e fs.DirEntry) {
		info, err := e.Info()
		if err != nil {
			if infoErr == nil && !isNotExist(err) {
				infoErr = err
			}
			return // removed since the listing: a change the next one shows
		}
		out[key] = fileStamp{info.ModTime(), info.Size()}
	})
	if err == nil {
		err = infoErr
	}
	return out, err
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
