package sqlstore

import (
	"os/exec"
	"strings"
	"testing"

	// The tests run every dialect, so their binary links every driver, as a program that uses
	// both would.
	_ "github.com/twitchoauth/twitchoauth/stores/sqlstore/postgres"
	_ "github.com/twitchoauth/twitchoauth/stores/sqlstore/sqlite"
)

// TestDriversLinkedAlone: sqlstore itself imports no driver, and each driver's package imports
// its own and not the other's, so that a program pays only for the driver it imports.
func TestDriversLinkedAlone(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on the PATH to list the packages' imports")
	}
	const pgx, modernc = "github.com/jackc/pgx/", "modernc.org/sqlite"
	for _, tc := range []struct {
		pkg        string
		want, none []string
	}{
		{".", nil, []string{pgx, modernc}},
		{"./postgres", []string{pgx}, []string{modernc}},
		{"./sqlite", []string{modernc}, []string{pgx}},
	} {
		out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", tc.pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", tc.pkg, err)
		}
		deps := string(out)
		for _, p := range tc.want {
			if !strings.Contains(deps, p) {
				t.Errorf("%s does not import %s", tc.pkg, p)
			}
		}
		for _, p := range tc.none {
			if strings.Contains(deps, p) {
				t.Errorf("%s imports %s", tc.pkg, p)
			}
		}
	}
}
