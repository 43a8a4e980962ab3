package twitchoauth_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/twitchoauth/twitchoauth"
)

// Tokens sealed at rest in a FileStore, under the key of ID "2026-01"; files sealed with "2025-01"
// stay readable, and are sealed with the new key at their next write, or by Reseal. In production
// the keys come from a secret manager, never from the code.
func ExampleKeyring() {
	ctx := context.Background()
	oldKey, newKey := make([]byte, twitchoauth.KeySize), make([]byte, twitchoauth.KeySize)
	rand.Read(oldKey)
	rand.Read(newKey)
	dir, _ := os.MkdirTemp("", "tokens")
	defer os.RemoveAll(dir)

	before, _ := twitchoauth.NewKeyring("2025-01", map[string][]byte{"2025-01": oldKey})
	store := twitchoauth.NewFileStore(dir)
	store.Keyring = before
	store.Save(ctx, "42", &twitchoauth.StoredToken{AccessToken: "access", RefreshToken: "refresh", UserID: "42"})

	// Rotation: the new key seals, the old one still opens.
	keyring, err := twitchoauth.NewKeyring("2026-01", map[string][]byte{"2026-01": newKey, "2025-01": oldKey})
	if err != nil {
		log.Fatal(err)
	}
	store.Keyring = keyring
	n, err := store.Reseal(ctx)
	if err != nil {
		log.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "user_token.42.json"))
	id, _ := twitchoauth.SealedKeyID(data)
	fmt.Println(keyring, n, id)

	// Without the key, the token does not open, and nothing takes it for missing.
	store.Keyring = nil
	_, err = store.Load(ctx, "42")
	fmt.Println(err == nil, errors.Is(err, twitchoauth.ErrCannotUnseal))
	// Output:
	// twitchoauth.Keyring(current "2026-01", keys 2025-01,2026-01) 1 2026-01
	// false true
}
