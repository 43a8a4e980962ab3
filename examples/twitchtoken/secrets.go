package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// The flags whose value is a secret take it in one of three forms: the secret itself, which every
// user of the machine sees in ps and the shell keeps in its history; "-", to read it from standard
// input (its first line, trimmed); or "env:NAME", to read it from the variable NAME.

// envNameRE matches a variable's name as shells and people write them, in capitals; a name that
// is not such is not shown, as it may be a secret written after env: by mistake.
var envNameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,63}$`)

// maxSecretLine caps what is read from standard input for a secret.
const maxSecretLine = 64 << 10

// secretFlag is a flag whose value is a secret: its name, what it holds, and where it goes.
type secretFlag struct {
	name, what string
	value      *string
}

func secretFlags(cfg *config) []secretFlag {
	return []secretFlag{
		{"client-secret", "client secret", &cfg.clientSecret},
		{"validate", "access token", &cfg.validate},
		{"refresh", "refresh token", &cfg.refresh},
		{"revoke", "access token", &cfg.revoke},
	}
}

// resolveSecrets replaces each given secret flag's "-" or "env:NAME" by the secret it names. Its
// errors name the flag and the variable, never a secret.
func resolveSecrets(ctx context.Context, cfg *config, getenv func(string) string, stdin io.Reader, stderr io.Writer) error {
	var fromStdin *secretFlag
	for _, f := range secretFlags(cfg) {
		if !cfg.set[f.name] {
			continue // TWITCH_CLIENT_SECRET is the secret itself
		}
		switch v := *f.value; {
		case v == "-":
			if fromStdin != nil {
				return fmt.Errorf("-%s and -%s both read standard input (-): give one of them another way", fromStdin.name, f.name)
			}
			fromStdin = &f
		case strings.HasPrefix(v, "env:"):
			name := strings.TrimPrefix(v, "env:")
			s := strings.TrimSpace(getenv(name))
			if s == "" && envNameRE.MatchString(name) {
				return fmt.Errorf("-%s env:%s: the variable %s is not set, or empty", f.name, name, name)
			} else if s == "" {
				// Not a variable's usual name: perhaps the secret itself, after env:.
				return fmt.Errorf("-%s env:NAME: the variable (its name not shown: it may be a secret) is not set, or empty", f.name)
			}
			*f.value = s
		}
	}
	if fromStdin == nil {
		return nil
	}
	s, err := readSecret(ctx, stdin, stderr, fromStdin.what)
	if err != nil {
		return fmt.Errorf("-%s -: %w", fromStdin.name, err)
	}
	*fromStdin.value = s
	return nil
}

// readSecret reads the first line of stdin, trimmed, asking for it when stdin is a terminal. It
// returns ctx's error if ctx ends first (Ctrl+C while it waits).
func readSecret(ctx context.Context, stdin io.Reader, stderr io.Writer, what string) (string, error) {
	if isTerminal(stdin) {
		fmt.Fprintf(stderr, "Paste the %s and press Enter: ", what)
	}
	type result struct {
		line string
		err  error
	}
	got := make(chan result, 1) // buffered: the reader never blocks on it
	go func() {
		line, err := bufio.NewReader(io.LimitReader(stdin, maxSecretLine)).ReadString('\n')
		if err == io.EOF {
			err = nil
		}
		got <- result{strings.TrimSpace(line), err}
	}()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case r := <-got:
		switch {
		case r.err != nil:
			return "", fmt.Errorf("read standard input: %w", r.err)
		case r.line == "":
			return "", fmt.Errorf("standard input has no %s on its first line", what)
		}
		return r.line, nil
	}
}
