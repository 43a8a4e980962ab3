package main

import (
	"cmp"
	"errors"
	"flag"
	"slices"
	"strconv"
	"strings"
)

// A value given to the wrong flag is often a secret: "-auth-base-url $UNSET -revoke TOKEN" hands
// TOKEN's flag name to -auth-base-url, "-port $TOKEN" a token to -port. So no error repeats a
// flag's value: it names the flag and says what is wrong. The flag package quotes the value in
// its own errors ("invalid value %q for flag -port"); guardedValue keeps those from being shown,
// and config.hide takes any value given out of the errors that come later.

// errHidden is what a guardedValue tells the flag package when a value is refused; the flag
// package's error, which quotes the value, is never shown (see flagError).
var errHidden = errors.New("refused")

// flagFailure is what went wrong with the value a flag was given, in words that do not repeat it.
type flagFailure struct{ name, why string }

// guardedValue is a flag's Value that records why a value was refused in failed, in words that do
// not repeat the value.
type guardedValue struct {
	flag.Value
	name   string
	failed *flagFailure
}

// guardFlags wraps the Value of every flag of fs in a guardedValue, and returns where the first
// refusal is recorded. Only parsing sees the wrapped values: the help is printed from a flag set
// of its own, so that it shows each flag's type.
func guardFlags(fs *flag.FlagSet) *flagFailure {
	failed := &flagFailure{}
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = &guardedValue{Value: f.Value, name: f.Name, failed: failed}
	})
	return failed
}

func (g *guardedValue) IsBoolFlag() bool {
	b, ok := g.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (g *guardedValue) String() string {
	if g == nil || g.Value == nil {
		return "" // the flag package's zero value, for PrintDefaults
	}
	return g.Value.String()
}

func (g *guardedValue) Set(s string) error {
	err := g.Value.Set(s)
	if err == nil {
		return nil
	}
	why := "not true or false (or give -" + g.name + " alone)"
	if !g.IsBoolFlag() {
		why = err.Error() // the Values of newFlagSet do not repeat the value; made sure of here
		if s != "" {
			why = strings.ReplaceAll(strings.ReplaceAll(why, strconv.Quote(s), `"…"`), s, "…")
		}
	}
	if g.failed.name == "" {
		*g.failed = flagFailure{g.name, why}
	}
	return errHidden
}

// hide returns s with every value given to a flag that may be a secret replaced by the flag's
// name, as "<-store>": an error of the library or the system may quote a URL or a path whole. A
// value shorter than 6 characters is no secret, and a scope list or a port that parsed is none.
func (cfg *config) hide(s string) string {
	type given struct{ name, value string }
	var values []given
	for name, v := range cfg.given {
		values = append(values, given{name, v})
	}
	for _, f := range secretFlags(cfg) { // as read from standard input or the environment
		if cfg.set[f.name] {
			values = append(values, given{f.name, *f.value})
		}
	}
	slices.SortFunc(values, func(a, b given) int { return cmp.Compare(len(b.value), len(a.value)) })
	for _, v := range values {
		if len(v.value) >= 6 {
			s = strings.ReplaceAll(s, v.value, "<-"+v.name+">")
		}
	}
	return s
}
