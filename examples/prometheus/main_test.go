package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDemo: the offline demo serves a series for every kind of event it made happen, the users
// by state with the revoked one counted, and a health report that names that user.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := demo(t.Context(), &out, ""); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`twitchoauth_refresh_duration_seconds_count{twitchoauth_refresh_outcome="ok",twitchoauth_token_kind="user"} 7`,
		`twitchoauth_refresh_duration_seconds_count{http_response_status_code="400",twitchoauth_refresh_outcome="rejected",twitchoauth_token_kind="user"} 1`,
		`twitchoauth_refresh_duration_seconds_count{http_response_status_code="503",twitchoauth_refresh_outcome="transient",twitchoauth_token_kind="user"} 1`,
		`twitchoauth_validation_duration_seconds_count{http_response_status_code="429",twitchoauth_validation_outcome="rate_limited"} 1`,
		`twitchoauth_store_operation_duration_seconds_count{db_operation_name="save_if"} 7`,
		`twitchoauth_user_changes_total{twitchoauth_user_change="added"} 20`,
		`twitchoauth_user_changes_total{twitchoauth_user_change="revoked"} 1`,
		`twitchoauth_users{twitchoauth_user_state="revoked"} 1`,
		`twitchoauth_users{twitchoauth_user_state="in_doubt"} 0`,
		`twitchoauth_users_pending{twitchoauth_pending_kind="mark"} 0`,
		`error_type="503",http_request_method="POST"`,
		`"need_action":[{"user_id":"5019","state":"revoked"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out.String())
	}
}

// TestListen: the metrics are served on loopback only, and a busy port says what to do.
func TestListen(t *testing.T) {
	if _, err := listen("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Errorf("listen on every interface: %v; want it refused", err)
	}
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := listen(ln.Addr().String()); err == nil || !strings.Contains(err.Error(), "pick another with -addr") {
		t.Errorf("listen on a busy port: %v; want a hint", err)
	}
}
