package twitchoauth

import (
	"cmp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// What a server echoes back may hold a secret it was sent, as is or disguised: re-cased,
// percent-encoded as in the form body it received, escaped as JSON or Go's %q escape strings, split
// by control or format characters. redact finds each secret in any mix of these forms and replaces
// it; every error text of the package goes through it.

const (
	// redactedMark replaces a secret.
	redactedMark = "[redacted]"
	// minSecretLen is the length, in characters, of the shortest secret looked for. A shorter value
	// ("", a stub) is no secret, and looking for it would redact ordinary words.
	minSecretLen = 4
	// maxScrubInput caps how many bytes of a text are searched; the rest is cut.
	maxScrubInput = 16 << 10
	// maxCauseLen caps the text of an error that cut a request short.
	maxCauseLen = 1 << 10
	// maxCharLen is the length of the longest escape of one character: four \xXX.
	maxCharLen = 16
)

// scrub returns s with every secret redacted, control and format characters dropped and its
// length capped at maxMessageLen.
func scrub(s string, secrets []string) string {
	return truncate(redact(s, secrets), maxMessageLen)
}

// truncate cuts s to at most n bytes, on a character boundary, and marks the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// scrubbedError is an error whose text holds no secret; errors.Is and errors.As see the error it
// stands for.
type scrubbedError struct {
	text string
	err  error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubError returns err with its text redacted and capped at maxCauseLen, or nil for nil.
func scrubError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	return &scrubbedError{text: truncate(redact(err.Error(), secrets), maxCauseLen), err: err}
}

// redact returns s with control and format characters dropped, then every secret replaced by
// redactedMark wherever it can be read: each of its characters as is or escaped (see readChar),
// case ignored, with escaped control and format characters skipped between them. Secrets shorter
// than minSecretLen characters are not looked for. Past maxScrubInput bytes, s is cut.
func redact(s string, secrets []string) string {
	s = strings.Map(func(r rune) rune {
		if invisible(r) {
			return -1
		}
		return r
	}, s) // also replaces invalid UTF-8 with U+FFFD
	cut := len(s) > maxScrubInput
	if cut {
		s = strings.ToValidUTF8(s[:maxScrubInput], "")
	}
	var spans []span
	for _, sec := range secrets {
		if want, ok := foldSecret(sec, s, cut); ok && len(want) >= minSecretLen {
			spans = find(s, want, cut, spans)
		}
	}
	if len(spans) == 0 && !cut {
		return s
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	var b strings.Builder
	done := 0 // s[:done] is written
	for i := 0; i < len(spans); {
		start, end := spans[i].start, spans[i].end
		for i++; i < len(spans) && spans[i].start <= end; i++ {
			end = max(end, spans[i].end)
		}
		b.WriteString(s[done:start])
		b.WriteString(redactedMark)
		done = end
	}
	b.WriteString(s[done:])
	if cut {
		b.WriteString("…")
	}
	return b.String()
}

// invisible reports whether r is a control or format character: one that a terminal does not
// show, or that rearranges what it shows.
func invisible(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }

// fold maps all cases of a character to one: the smallest character that Unicode's simple case
// folding holds equal to it (as strings.EqualFold does), with an ASCII letter in lower case.
func fold(r rune) rune {
	if r >= utf8.RuneSelf {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		r = least
	}
	if 'A' <= r && r <= 'Z' {
		r += 'a' - 'A'
	}
	return r
}

// foldSecret returns what find looks for in s: the secret's visible characters, folded, as far
// as they can matter. Each character read takes at least one byte of s, so a secret of more than
// len(s) characters cannot be read whole in s, and ok is false; unless s was cut, when a partial
// reading counts: then want is the secret's first len(s)+1 characters, whose partial readings are
// the secret's. So want, and find's work, are bounded by len(s), however long the secret.
func foldSecret(secret, s string, cut bool) (want []rune, ok bool) {
	limit := len(s) + 1
	want = make([]rune, 0, min(len(secret), limit))
	for _, r := range secret {
		if len(want) == limit {
			break
		}
		if !invisible(r) {
			want = append(want, fold(r))
		}
	}
	return want, cut || len(want) <= len(s)
}

// span is where a secret was found: s[start:end].
type span struct{ start, end int }

// find appends to spans each place where want (at least two folded characters) can be read in s,
// from its earliest possible start. It keeps, for each of the next maxCharLen positions, the
// earliest start of every partial reading of want that ends there, so its work is linear in
// len(s)·len(want). When s was cut, a partial reading that reaches the last maxCharLen bytes is
// taken for a match, lest part of a secret show.
func find(s string, want []rune, cut bool, spans []span) []span {
	const slots = maxCharLen + 1
	m := len(want)
	// from[(p%slots)*m + i], for 0 < i < m, is the earliest start of a reading of want[:i] that
	// ends at p, or -1; live counts them at each slot.
	from := make([]int, slots*m)
	for i := range from {
		from[i] = -1
	}
	var live [slots]int
	tail := -1
	for p := 0; p <= len(s); p++ {
		slot := p % slots
		runs := from[slot*m : slot*m+m]
		if cut && live[slot] > 0 && p > len(s)-maxCharLen {
			for _, start := range runs[1:] {
				if start >= 0 && (tail < 0 || start < tail) {
					tail = start
				}
			}
		}
		if p < len(s) && utf8.RuneStart(s[p]) {
			chars, n := readChar(s, p)
			for _, c := range chars[:n] {
				f, next := fold(c.r), c.end%slots
				nextRuns := from[next*m : next*m+m]
				if f == want[0] {
					extend(nextRuns, &live[next], 1, p)
				}
				if live[slot] == 0 {
					continue
				}
				skip := invisible(c.r)
				for i := 1; i < m; i++ {
					switch start := runs[i]; {
					case start < 0:
					case f == want[i] && i+1 == m:
						spans = append(spans, span{start, c.end})
					case f == want[i]:
						extend(nextRuns, &live[next], i+1, start)
					case skip:
						extend(nextRuns, &live[next], i, start)
					}
				}
			}
		}
		if live[slot] > 0 {
			for i := range runs {
				runs[i] = -1
			}
			live[slot] = 0
		}
	}
	if tail >= 0 {
		spans = append(spans, span{tail, len(s)})
	}
	return spans
}

// extend records a reading of want[:i] from start in runs, the readings that end at one position.
func extend(runs []int, live *int, i, start int) {
	switch {
	case runs[i] < 0:
		runs[i] = start
		*live++
	case start < runs[i]:
		runs[i] = start
	}
}

// char is one character read at some position of a text, and where its reading ends.
type char struct {
	r   rune
	end int
}

// readChar returns the ways to read the character at s[p], a character boundary: as itself, and as
// what an escape there stands for — a run of %XX or \xXX bytes (several for a character beyond
// ASCII), \uXXXX (two for a UTF-16 surrogate pair), \UXXXXXXXX, a backslash and one character (\n,
// \t, \/, \\, ...) — or, for '+', as the space of a form body. Hex digits may be of either case.
func readChar(s string, p int) (chars [2]char, n int) {
	r, size := utf8.DecodeRuneInString(s[p:])
	chars[0] = char{r, p + size}
	var (
		c  char
		ok bool
	)
	switch s[p] {
	case '+':
		c, ok = char{' ', p + 1}, true
	case '%':
		c, ok = escapedBytes(s, p)
	case '\\':
		if c, ok = escapedBytes(s, p); !ok {
			c, ok = backslashEscape(s, p)
		}
	}
	if !ok {
		return chars, 1
	}
	chars[1] = c
	return chars, 2
}

// escapedBytes reads the character that the run of %XX or \xXX bytes at s[p] spells in UTF-8; a
// byte that begins no valid character reads as U+FFFD.
func escapedBytes(s string, p int) (char, bool) {
	var (
		buf  [utf8.UTFMax]byte
		ends [utf8.UTFMax]int
		n    int
	)
	for end := p; n == 0 || (n < utf8.UTFMax && !utf8.FullRune(buf[:n])); n++ {
		b, e, ok := escapedByte(s, end)
		if !ok {
			break
		}
		buf[n], ends[n], end = b, e, e
	}
	if n == 0 {
		return char{}, false
	}
	r, size := utf8.DecodeRune(buf[:n])
	return char{r, ends[size-1]}, true
}

// escapedByte reads %XX or \xXX at s[p].
func escapedByte(s string, p int) (b byte, end int, ok bool) {
	switch {
	case p+3 <= len(s) && s[p] == '%':
		end = p + 3
	case p+4 <= len(s) && s[p] == '\\' && s[p+1] == 'x':
		end = p + 4
	default:
		return 0, 0, false
	}
	v, ok := hexValue(s[end-2 : end])
	return byte(v), end, ok
}

// backslashEscape reads, at s[p], \uXXXX (followed by the second half of a UTF-16 surrogate pair,
// if it is the first), \UXXXXXXXX, or a backslash and one character, as JSON and Go quote strings.
func backslashEscape(s string, p int) (char, bool) {
	if p+1 >= len(s) {
		return char{}, false
	}
	switch e := s[p+1]; e {
	case 'u':
		if p+6 > len(s) {
			return char{}, false
		}
		v, ok := hexValue(s[p+2 : p+6])
		if !ok {
			return char{}, false
		}
		r, end := rune(v), p+6
		if utf16.IsSurrogate(r) {
			if end+6 <= len(s) && s[end:end+2] == `\u` {
				if low, ok := hexValue(s[end+2 : end+6]); ok {
					if pair := utf16.DecodeRune(r, rune(low)); pair != utf8.RuneError {
						return char{pair, end + 6}, true
					}
				}
			}
			r = utf8.RuneError
		}
		return char{r, end}, true
	case 'U':
		if p+10 > len(s) {
			return char{}, false
		}
		v, ok := hexValue(s[p+2 : p+10])
		if !ok {
			return char{}, false
		}
		r := utf8.RuneError
		if v <= unicode.MaxRune && utf8.ValidRune(rune(v)) {
			r = rune(v)
		}
		return char{r, p + 10}, true
	default:
		const from, to = `abfnrtv0\"'/`, "\a\b\f\n\r\t\v\x00\\\"'/"
		if i := strings.IndexByte(from, e); i >= 0 {
			return char{rune(to[i]), p + 2}, true
		}
		return char{}, false
	}
}

// hexValue reads h, hex digits of either case.
func hexValue(h string) (v uint32, ok bool) {
	for i := range len(h) {
		c := h[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(c)
	}
	return v, true
}
