package twitchoauth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// unsealReason is why one record did not open.
type unsealReason int

const (
	noKeyring  unsealReason = iota + 1 // the store has no Keyring
	unknownKey                         // the Keyring holds no key of the record's key ID
	wrongKey                           // the key of that ID does not open it
	altered                            // the sealed value is not one a Keyring wrote
)

// UnsealError is the error of stored tokens that are sealed and that a store cannot open: one
// record's, or many records' at once (a Sync over the whole store, a Reseal), summed up in one
// line that gives their number and the key IDs they were sealed with, never one line per record.
// It Is [ErrCannotUnseal], names keys and key IDs only, never a key or a token, and ends with what
// to check: the Keyring.
type UnsealError struct {
	// Count is how many records could not be opened.
	Count int
	// Key is the record's key when Count is 1.
	Key string
	// KeyIDs are the IDs of the keys that sealed them, sorted, each once.
	KeyIDs []string
	// Held are the IDs of the keys the store's Keyring holds, sorted; nil when it has none.
	Held []string

	reason unsealReason // one record's
}

// Is reports whether target is ErrCannotUnseal.
func (e *UnsealError) Is(target error) bool { return target == ErrCannotUnseal }

// maxListedKeyIDs caps the key IDs an UnsealError lists.
const maxListedKeyIDs = 5

func (e *UnsealError) Error() string {
	var b strings.Builder
	if e.Count == 1 {
		fmt.Fprintf(&b, "twitchoauth: the sealed token of key %s could not be opened: ", QuoteKey(e.Key))
	} else {
		fmt.Fprintf(&b, "twitchoauth: %d stored tokens could not be opened: ", e.Count)
	}
	ids := quoteIDs(e.KeyIDs)
	switch {
	case e.Count == 1 && e.reason == wrongKey:
		fmt.Fprintf(&b, "the key of ID %s does not open it (another key under that ID, or a record altered or moved)", ids)
	case e.Count == 1 && e.reason == altered:
		b.WriteString("its sealed value is not one a Keyring wrote (altered)")
		if ids != "" {
			fmt.Fprintf(&b, "; sealed with key ID %s", ids)
		}
	case len(e.KeyIDs) == 1:
		fmt.Fprintf(&b, "sealed with key ID %s", ids)
	case len(e.KeyIDs) > 1:
		fmt.Fprintf(&b, "sealed with key IDs %s", ids)
	default:
		b.WriteString("sealed")
	}
	if e.Held == nil {
		b.WriteString("; the store has no Keyring: set its Keyring")
	} else {
		fmt.Fprintf(&b, "; the Keyring holds %s: check the Keyring", quoteIDs(e.Held))
	}
	return b.String()
}

// quoteIDs lists ids quoted, the first few only.
func quoteIDs(ids []string) string {
	var b strings.Builder
	for i, id := range ids {
		if i == maxListedKeyIDs {
			fmt.Fprintf(&b, " and %d more", len(ids)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteKey(id))
	}
	return b.String()
}

// JoinStoreErrors joins the errors of many records as [errors.Join] does, except that every one
// that Is [ErrCannotUnseal] counts in one [*UnsealError] that sums them up, in one line: a store
// whose Keyring lacks a key makes one error, however many records it fails to open. One record
// that did not open keeps its own error (it names the key); the other errors are kept as they
// are. It returns nil when every error is nil. Stores join the errors of their Reseal with it.
func JoinStoreErrors(errs ...error) error {
	var sum UnsealError
	var first error
	var rest []error
	ids := map[string]bool{}
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrCannotUnseal) {
			rest = append(rest, err)
			continue
		}
		var ue *UnsealError
		if !errors.As(err, &ue) {
			sum.Count++
			if first == nil {
				first = err
			}
			continue
		}
		if first == nil {
			first = err
		}
		sum.Count += max(ue.Count, 1)
		for _, id := range ue.KeyIDs {
			ids[id] = true
		}
		if sum.Held == nil {
			sum.Held = ue.Held
		}
	}
	switch {
	case sum.Count == 1:
		rest = append([]error{first}, rest...)
	case sum.Count > 1:
		for id := range ids {
			sum.KeyIDs = append(sum.KeyIDs, id)
		}
		slices.Sort(sum.KeyIDs)
		rest = append([]error{&sum}, rest...)
	}
	switch len(rest) {
	case 0:
		return nil
	case 1:
		return rest[0]
	}
	return errors.Join(rest...)
}

// ResealEach is the loop of a store's Reseal, for the stores that seal (this package's FileStore,
// redisstore and sqlstore use it): it calls reseal for each key, which rewrites the key's record
// sealed with the current key unless it already is, and reports whether it wrote it. It returns
// how many records were written and, when some failed, one error for them all
// ([JoinStoreErrors]); when ctx ends, it stops with the failure ctx's end caused.
func ResealEach(ctx context.Context, keys []string, reseal func(ctx context.Context, key string) (bool, error)) (int, error) {
	written := 0
	var errs []error
	for _, key := range keys {
		done, err := reseal(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return written, err
			}
			errs = append(errs, err)
		}
		if done {
			written++
		}
	}
	return written, JoinStoreErrors(errs...)
}
