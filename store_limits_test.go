package twitchoauth_test

import (
	"encoding/json"
	"testing"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/internal/storetest"
)

// TestFileStoreRecordLimit: a token file of twitchoauth.MaxStoredTokenSize bytes is written and
// read back; a larger one is refused by Save and SaveIf, and nothing is written.
func TestFileStoreRecordLimit(t *testing.T) {
	s := twitchoauth.NewFileStore(t.TempDir())
	storetest.WantRecordLimit(t, t.Context(), s, func(st *twitchoauth.StoredToken) ([]byte, error) {
		data, err := json.MarshalIndent(st, "", "  ")
		return append(data, '\n'), err
	})
}
