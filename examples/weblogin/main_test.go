package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDemo runs the offline demo: a login through the app's handlers against the fake Twitch.
func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := runDemo(t.Context(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"offline demo", `"Bot dashboard"`, `Back on the dashboard: "Signed in as streamer"`, "Demo finished"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
