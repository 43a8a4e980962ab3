package redisstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/twitchoauth/twitchoauth"
)

// Reseal writes again, sealed with the Keyring's current key, every token under Prefix that is not
// sealed with it: tokens sealed with an older key, and tokens written before the Store had a
// Keyring. Each is rewritten as SaveIf does, only while its value is still the one read (a token
// written meanwhile was sealed with the current key by its writer, or is read again), and its key
// is published. It returns how many tokens it wrote. Once it returns without error, and every
// replica runs with the new Keyring, no token needs the older keys: drop them. Tokens it cannot
// open are left as they are, and make its error: one line for all of them that Is
// [twitchoauth.ErrCannotUnseal] (see [twitchoauth.JoinStoreErrors]).
//
// Redis keeps an older value in its append-only file until the file is rewritten: after a
// Reseal, or after a Keyring is first set, run BGREWRITEAOF (and take a new RDB snapshot) so that
// no value in the clear, or sealed with a dropped key, stays on disk.
func (s *Store) Reseal(ctx context.Context) (int, error) {
	if s.Keyring == nil {
		return 0, errors.New("redisstore: reseal: the Store has no Keyring")
	}
	keys, err := s.Keys(ctx)
	if err != nil {
		return 0, fmt.Errorf("redisstore: reseal: %w", err)
	}
	written, err := twitchoauth.ResealEach(ctx, keys, s.reseal)
	if err != nil {
		return written, fmt.Errorf("redisstore: reseal: %w", err)
	}
	return written, nil
}

// reseal writes key's token again sealed with the current key, unless it already is, and reports
// whether it wrote it.
func (s *Store) reseal(ctx context.Context, key string) (bool, error) {
	rkey := s.tokenKey(key)
	for range saveIfReads {
		cur, err := s.Client.Get(ctx, rkey).Bytes()
		if errors.Is(err, redis.Nil) {
			return false, nil // deleted meanwhile
		}
		if err != nil {
			return false, redisError(ctx, err)
		}
		if id, sealed := twitchoauth.SealedKeyID(cur); sealed && id == s.Keyring.Current() {
			return false, nil // written meanwhile, or already
		}
		st, err := s.decode(key, rkey, cur)
		if err != nil {
			return false, err
		}
		data, err := s.encode(key, st)
		if err != nil {
			return false, err
		}
		if done, err := s.swap(ctx, key, rkey, cur, data, nil); err != nil || done {
			return done, err
		}
	}
	return false, fmt.Errorf("redis key %s kept changing: %w", twitchoauth.QuoteKey(rkey), twitchoauth.ErrTokenChanged)
}
