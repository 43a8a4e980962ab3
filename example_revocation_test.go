package twitchoauth_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/twitchoauth/twitchoauth"
	"github.com/twitchoauth/twitchoauth/twitchoauthtest"
)

// Twitch tells an app that a user disconnected it through EventSub: mount the registry's
// revocation handler at a webhook callback (https, port 443), then create a subscription to
// user.authorization.revoke with an app token, that callback and the same secret. The handler
// answers Twitch's challenge, which enables the subscription, as here; then each notification
// removes its user, and OnRevoked hears of it.
func ExampleUserTokens_RevocationHandler() {
	fake := twitchoauthtest.New() // a fake Twitch; use Twitch's own with a real client ID and secret
	defer fake.Close()
	users := twitchoauth.NewUserTokens(fake.Client(), nil)
	users.OnRevoked = func(userID string, err error) {
		log.Printf("user %s disconnected the app: delete what is kept of them (%v)", userID, err)
	}
	secret := []byte("a-secret-of-10-to-100-characters") // keep it out of the code and the logs
	mux := http.NewServeMux()
	mux.Handle("POST /eventsub", users.RevocationHandler(secret))

	// Twitch's first message after the subscription was created (POST
	// /helix/eventsub/subscriptions with {"type":"user.authorization.revoke","version":"1",
	// "condition":{"client_id":...},"transport":{"method":"webhook","callback":...,"secret":...}}).
	body := `{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"type":"user.authorization.revoke","version":"1"}}`
	id, sent := "e76c6bd4-55c9-4987-8304-da1588d8988b", time.Now().UTC().Format(time.RFC3339Nano)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id + sent + body))
	req := httptest.NewRequest(http.MethodPost, "/eventsub", strings.NewReader(body))
	req.Header.Set("Twitch-Eventsub-Message-Id", id)
	req.Header.Set("Twitch-Eventsub-Message-Timestamp", sent)
	req.Header.Set("Twitch-Eventsub-Message-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("Twitch-Eventsub-Message-Type", "webhook_callback_verification")
	req.Header.Set("Twitch-Eventsub-Subscription-Type", "user.authorization.revoke")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	// Output: 200 text/plain pogchamp-kappa-360noscope-vohiyo
}
