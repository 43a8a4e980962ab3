package twitchoauth

import (
	"encoding/csv"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestScopeConstantsMatchTable checks every constant in scopes.go against Twitch's scope table in the
// shared design folder: its name, its value, and the Deprecated line of the deprecated ones.
func TestScopeConstantsMatchTable(t *testing.T) {
	f, err := os.Open("../shared/design/scopes.tsv")
	if err != nil {
		t.Skipf("scope table not beside the repository: %v", err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma, r.LazyQuotes = '\t', true
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}

	type constant struct {
		value      string
		deprecated bool
	}
	file, err := parser.ParseFile(token.NewFileSet(), "scopes.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]constant{}
	for _, decl := range file.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok {
				continue
			}
			v, _ := strconv.Unquote(lit.Value)
			consts[vs.Names[0].Name] = constant{v, strings.Contains(vs.Doc.Text(), "Deprecated: ")}
		}
	}

	camel := func(s string) string {
		var b strings.Builder
		for _, p := range regexp.MustCompile(`[_:]`).Split(strings.ToLower(s), -1) {
			if p != "" {
				b.WriteString(strings.ToUpper(p[:1]) + p[1:])
			}
		}
		return b.String()
	}
	var current []Scope
	for _, row := range rows[1:] {
		scope, status, member := row[0], row[1], row[2]
		name := "Scope" + camel(member)
		if member == "" {
			name = "Scope" + camel(scope)
		}
		c, ok := consts[name]
		if !ok {
			t.Errorf("no constant %s for %q", name, scope)
			continue
		}
		if c.value != scope {
			t.Errorf("%s = %q, want %q", name, c.value, scope)
		}
		if c.deprecated != (status == "deprecated") {
			t.Errorf("%s: deprecated = %v, table says %s", name, c.deprecated, status)
		}
		if status == "current" {
			current = append(current, Scope(scope))
		}
	}
	if len(consts) != len(rows)-1 {
		t.Errorf("scopes.go has %d scope constants, the table %d", len(consts), len(rows)-1)
	}
	if got := AllScopes(); !slices.Equal(got, current) {
		t.Errorf("AllScopes() has %d scopes, want the table's %d current ones in order", len(got), len(current))
	}
}

func TestAllScopes(t *testing.T) {
	all := AllScopes()
	if len(all) != 81 {
		t.Fatalf("len(AllScopes()) = %d, want 81", len(all))
	}
	for _, s := range []Scope{ScopeChannelSubscriptions, ScopeUserEditFollows, ScopeWhispersEdit} { //nolint:staticcheck // deprecated on purpose
		if slices.Contains(all, s) {
			t.Errorf("AllScopes holds deprecated %q", s)
		}
	}
	all[0] = "changed"
	if AllScopes()[0] == "changed" {
		t.Error("AllScopes returns shared storage")
	}
}

func TestParseScopesRoundTrip(t *testing.T) {
	in := []Scope{ScopeChatRead, "future:scope", ScopeChannelBot}
	if got := ParseScopes(BuildScope(in)); !slices.Equal(got, in) {
		t.Errorf("round trip = %v, want %v", got, in)
	}
	if got := ParseScopes("  \t "); got != nil {
		t.Errorf("ParseScopes(blank) = %v, want nil", got)
	}
	if got := BuildScope(nil); got != "" {
		t.Errorf("BuildScope(nil) = %q", got)
	}
}

func TestTokenScopes(t *testing.T) {
	base := &oauth2.Token{AccessToken: "a"}
	tests := []struct {
		name string
		tok  *oauth2.Token
		want []Scope
	}{
		{"nil token", nil, nil},
		{"no extra", base, nil},
		{"json array", base.WithExtra(map[string]any{"scope": []any{"chat:read", "chat:edit"}}), []Scope{ScopeChatRead, ScopeChatEdit}},
		{"twitch-cli none", base.WithExtra(map[string]any{"scope": []any{""}}), nil},
		{"string slice", base.WithExtra(map[string]any{"scope": []string{"chat:read"}}), []Scope{ScopeChatRead}},
		{"scope slice", base.WithExtra(map[string]any{"scope": []Scope{ScopeChatRead}}), []Scope{ScopeChatRead}},
		{"rfc string", base.WithExtra(map[string]any{"scope": "chat:read unknown:x"}), []Scope{ScopeChatRead, "unknown:x"}},
		{"other type", base.WithExtra(map[string]any{"scope": 7}), nil},
	}
	for _, tt := range tests {
		if got := TokenScopes(tt.tok); !slices.Equal(got, tt.want) {
			t.Errorf("%s: TokenScopes = %v, want %v", tt.name, got, tt.want)
		}
	}
}
