package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/twitchoauth/twitchoauth"
)

// config is what the flags and the environment say.
type config struct {
	clientID     string
	clientSecret string
	authBaseURL  string
	scopes       []twitchoauth.Scope
	device       bool
	noBrowser    bool
	port         int
	store        string
	validate     string
	refresh      string
	revoke       string
	json         bool

	set   map[string]bool   // the flags given, by name
	given map[string]string // the values given that may be secrets, by flag name: see hide
}

// helpHeader opens -h's help, above the flags.
const helpHeader = `twitchtoken gets a Twitch user access token.

With no client ID it runs an offline demo on a built-in fake of Twitch. With one, it logs you in
through the browser (or the device flow with -device) and prints the token.

Register an app at https://dev.twitch.tv/console/apps with the redirect URL http://localhost:17563.

A token or secret given as an argument is seen by every user of this machine (ps) and kept in your
shell's history. Safer: give - to read it from standard input (its first line), or env:NAME to read
it from the variable NAME:

  pass show twitch/token | twitchtoken -validate -
  twitchtoken -client-id ID -revoke env:TWITCH_TOKEN

With no -client-secret, the secret is read from $TWITCH_CLIENT_SECRET.

Flags:
`

// expects says, for each flag that takes a value, what the value should be: the end of the
// one-line error when it is missing.
var expects = map[string]string{
	"client-id":     "your app's client ID",
	"client-secret": "your app's client secret",
	"auth-base-url": "an http or https URL",
	"scopes":        "scopes such as chat:read,chat:edit",
	"port":          "a port number (0-65535; 0 picks a free one)",
	"store":         "a file path",
	"validate":      "an access token",
	"refresh":       "a refresh token",
	"revoke":        "an access token",
}

// newFlagSet defines the flags on cfg. The flag set prints nothing: parseFlags prints the help on
// -h, and a one-line error otherwise, so that the error does not scroll away above the help.
func newFlagSet(cfg *config, getenv func(string) string) (fs *flag.FlagSet, scopes *string) {
	fs = flag.NewFlagSet("twitchtoken", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&cfg.clientID, "client-id", getenv("TWITCH_CLIENT_ID"), "your app's client ID (default $TWITCH_CLIENT_ID); none runs the offline demo")
	// No default from the environment here: PrintDefaults would show it in -h. parseFlags reads it.
	fs.StringVar(&cfg.clientSecret, "client-secret", "", "your app's client `secret`, or - or env:NAME (see above; default $TWITCH_CLIENT_SECRET); none for a public client")
	fs.StringVar(&cfg.authBaseURL, "auth-base-url", twitchoauth.DefaultAuthBaseURL, "Twitch's identity server, or a compatible one such as twitch-cli's mock")
	scopes = fs.String("scopes", "", "scopes to ask for, comma- or space-separated, e.g. chat:read,chat:edit")
	fs.BoolVar(&cfg.device, "device", false, "use the device flow: enter a code on any device instead of opening a browser here")
	fs.BoolVar(&cfg.noBrowser, "no-browser", false, "print the login URL instead of opening the browser")
	cfg.port = twitchoauth.DefaultPort
	fs.Var((*portValue)(&cfg.port), "port", "`port` of the local redirect server, 0 for any free one; register http://localhost:PORT as a redirect URL")
	fs.StringVar(&cfg.store, "store", "", "keep the token in this file: reuse and refresh it, log in only when it must")
	fs.StringVar(&cfg.validate, "validate", "", "validate this access `token` (or - or env:NAME, see above) and print what it grants")
	fs.StringVar(&cfg.refresh, "refresh", "", "trade this refresh `token` (or - or env:NAME, see above) for a new token (needs -client-id)")
	fs.StringVar(&cfg.revoke, "revoke", "", "revoke this access `token` (or - or env:NAME, see above; needs -client-id)")
	fs.BoolVar(&cfg.json, "json", false, "print the token as JSON, for scripts")
	return fs, scopes
}

// printHelp prints -h's help: what the command does, then every flag.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, helpHeader)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parseFlags reads the flags and the environment. On -h it prints the help to stderr and returns
// [flag.ErrHelp]; any other error is one line that names the flag and what it expects, and never
// repeats a value given (see guardedValue).
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (*config, error) {
	cfg := &config{}
	fs, scopes := newFlagSet(cfg, getenv)
	failed := guardFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help, _ := newFlagSet(&config{}, getenv)
			printHelp(stderr, help)
			return nil, err
		}
		return nil, flagError(fs, args, failed, err)
	}
	cfg.set, cfg.given = map[string]bool{}, map[string]string{}
	fs.Visit(func(f *flag.Flag) {
		cfg.set[f.Name] = true
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); (!ok || !b.IsBoolFlag()) && !notSecret[f.Name] {
			cfg.given[f.Name] = f.Value.String()
		}
	})
	if !cfg.set["client-secret"] {
		cfg.clientSecret = getenv("TWITCH_CLIENT_SECRET")
	}
	if err := swallowedFlag(fs); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		// Never the argument itself: it is often a token whose flag went missing.
		pos := len(args) - fs.NArg() + 1
		return nil, fmt.Errorf("unexpected argument #%d (%d characters, not shown: it may be a secret); "+
			"every flag and its value go before it", pos, utf8.RuneCountInString(fs.Arg(0)))
	}
	var err error
	if cfg.scopes, err = parseScopes(*scopes); err != nil {
		return nil, err
	}
	actions := 0
	for _, v := range []string{cfg.validate, cfg.refresh, cfg.revoke} {
		if v != "" {
			actions++
		}
	}
	switch {
	case actions > 1:
		return nil, errors.New("use one of -validate, -refresh and -revoke at a time")
	case (cfg.refresh != "" || cfg.revoke != "") && cfg.clientID == "":
		return nil, errors.New("-refresh and -revoke need your app's client ID: pass -client-id or set TWITCH_CLIENT_ID")
	case cfg.device && cfg.noBrowser:
		return nil, errors.New("-device never opens a browser: drop -no-browser")
	}
	// Checked now, not when first used: a bad URL would fail only after the login page was
	// asked for, and a store that cannot be written only after the login.
	if err := checkBaseURL(cfg.authBaseURL); err != nil {
		return nil, err
	}
	if cfg.store != "" {
		if err := checkStorePath(cfg.store); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// notSecret names the flags whose values, once parsed, cannot be secrets: a port number, scopes
// Twitch knows.
var notSecret = map[string]bool{"port": true, "scopes": true}

// checkBaseURL checks that -auth-base-url is an http or https URL with a host. Its error does not
// repeat the value.
func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	why := ""
	switch {
	case err != nil:
		why = "not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		why = "not an http or https URL"
	case u.Hostname() == "":
		why = "an http or https URL without a host"
	default:
		return nil
	}
	return fmt.Errorf("-auth-base-url: %s (Twitch's is %s)", why, twitchoauth.DefaultAuthBaseURL)
}

// checkStorePath checks that -store names a file that can be written: its directory exists and
// takes a new file (the store writes a temporary file beside path, and a lock file, then renames).
// Its errors do not repeat the path.
func checkStorePath(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return errors.New("-store names a directory: name a file in it, such as token.json")
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	var pe *iofs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // without the path
	}
	switch {
	case errors.Is(err, iofs.ErrNotExist):
		return errors.New("-store: the directory of the file does not exist; create it first")
	case err != nil:
		return fmt.Errorf("-store: the directory of the file: %w", err)
	case !fi.IsDir():
		return errors.New("-store: what should be the directory of the file is not a directory")
	}
	f, err := os.CreateTemp(dir, ".twitchtoken-check-*")
	if err != nil {
		if errors.As(err, &pe) {
			err = pe.Err // the path is a temporary name of no interest
		}
		return fmt.Errorf("-store: cannot write in the directory of the file: %w", err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// swallowedFlag reports a flag whose value is another flag, as in "-auth-base-url $URL -revoke
// TOKEN" with URL unset: -auth-base-url takes "-revoke" as its value, and TOKEN is left over. It
// names the two flags, never what follows "=" (which may be a secret).
func swallowedFlag(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); err != nil || (ok && b.IsBoolFlag()) {
			return
		}
		v := f.Value.String()
		if !strings.HasPrefix(v, "-") {
			return
		}
		name, _, _ := strings.Cut(strings.TrimLeft(v, "-"), "=")
		if name != "" && fs.Lookup(name) != nil {
			err = fmt.Errorf("-%s was given the flag -%s as its value: was its value left out (an unset shell variable?)", f.Name, name)
		}
	})
	return err
}

// flagError rewords an error of fs.Parse over args as one line that names the flag and what it
// expects, such as "-port: not a port number (…)" rather than "invalid value … : parse error". It
// never repeats what was given: failed, which guardFlags set up, says why a value was refused; an
// argument that is not a flag is named by its position, or as a typo of a flag (a secret is no
// near miss of a flag's name).
func flagError(fs *flag.FlagSet, args []string, failed *flagFailure, err error) error {
	if failed.name != "" {
		return fmt.Errorf("-%s: %s", failed.name, failed.why)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok && fs.Lookup(name) != nil {
		if want, ok := expects[name]; ok {
			return fmt.Errorf("-%s needs a value: %s", name, want)
		}
		return fmt.Errorf("-%s needs a value", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name, _, _ = strings.Cut(name, "=")
		if near := closestFlag(fs, name); near != "" {
			return fmt.Errorf("-%s is not a flag (did you mean -%s?)", name, near)
		}
		for i, a := range args {
			if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && n == name {
				return fmt.Errorf("argument #%d starts with - but is not a flag (%d characters, not shown: it may be a secret)",
					i+1, utf8.RuneCountInString(a))
			}
		}
	}
	// "bad flag syntax: -=…" and the like quote the argument.
	return errors.New("an argument starting with - is not a flag (not shown: it may be a secret)")
}

// closestFlag returns the name of fs's flag nearest to name, if one is near enough to be a typo.
func closestFlag(fs *flag.FlagSet, name string) string {
	best, bestDist := "", 3
	fs.VisitAll(func(f *flag.Flag) {
		if d := editDistance(name, f.Name); d < bestDist {
			best, bestDist = f.Name, d
		}
	})
	return best
}

// portValue is -port's value: a number from 0 to 65535.
type portValue int

func (p *portValue) String() string {
	if p == nil {
		return "0"
	}
	return strconv.Itoa(int(*p))
}

func (p *portValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("not a port number (0-65535; 0 picks a free one)")
	}
	*p = portValue(n)
	return nil
}
