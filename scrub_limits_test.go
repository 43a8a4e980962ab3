package twitchoauth

import (
	"cmp"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// allocated returns how many bytes f allocates: the least of three runs, each measured by the
// heap's running total around it, on one P so that little else runs meanwhile.
func allocated(f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	least := uint64(math.MaxUint64)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// TestScrubLongSecretLimits: a secret far longer than the text costs memory in proportion to the
// text, not to the secret, and is redacted all the same wherever it can still be read: in a
// text cut at maxScrubInput, a secret the cut splits is redacted as far as it goes.
func TestScrubLongSecretLimits(t *testing.T) {
	long := strings.Repeat("Zq9+", 1<<18) // 1 MiB
	tests := []struct {
		name    string
		text    string
		secrets []string
		want    string
		limit   uint64 // bytes scrub may allocate
	}{
		{"short text", "invalid code", []string{long, long[:900_000]}, "invalid code", 4 << 10},
		{"short text, secret echoed in part", "bad " + long[:64] + " here", []string{long}, "bad " + long[:64] + " here", 4 << 10},
		// Invisible characters of a secret are not looked for, so its visible ones are.
		{"padded with format characters", "bad Zq9+Xy here", []string{strings.Repeat("\u200b", 1<<20) + "Zq9+Xy"},
			"bad [redacted] here", 4 << 10},
		// Folded, a secret can be shorter than as sent: the Kelvin sign is 3 bytes, k one.
		{"folding shortens it", "bad kkkk here", []string{"\u212a\u212a\u212a\u212a"}, "bad [redacted] here", 4 << 10},
		{"cut text ends with its start", strings.Repeat("x", maxScrubInput-100) + long, []string{long},
			strings.Repeat("x", maxScrubInput-100) + "[redacted]…", 4 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := redact(tt.text, tt.secrets); got != tt.want {
				t.Errorf("redact = %.80q… (%d bytes), want %.80q… (%d bytes)", got, len(got), tt.want, len(tt.want))
			}
			n := allocated(func() { scrub(tt.text, tt.secrets) })
			t.Logf("scrub allocated %d bytes", n)
			if n > tt.limit {
				t.Errorf("scrub of %d bytes with a secret of %d allocated %d bytes, want at most %d",
					len(tt.text), len(tt.secrets[0]), n, tt.limit)
			}
		})
	}
}

// FuzzFoldSecretBound: find, looking for only what foldSecret keeps of a secret, finds in any text,
// cut or not, exactly what it finds looking for the whole secret.
func FuzzFoldSecretBound(f *testing.F) {
	f.Add("abcd", "abcdefgh", true)
	f.Add("xx%61%62", "ab\u200bcdef", true)
	f.Add("bad kkkk", "\u212a\u212a\u212a\u212a", false)
	f.Add(`\u0061bc`, "abcd", false)
	f.Fuzz(func(t *testing.T, s, secret string, cut bool) {
		var whole []rune
		for _, r := range secret {
			if !invisible(r) {
				whole = append(whole, fold(r))
			}
		}
		if len(whole) < 2 {
			return
		}
		want := find(s, whole, cut, nil)
		var got []span
		if kept, ok := foldSecret(secret, s, cut); ok {
			if len(kept) > len(s)+1 {
				t.Fatalf("kept %d characters for a text of %d bytes", len(kept), len(s))
			}
			got = find(s, kept, cut, nil)
		}
		sortSpans := func(ss []span) {
			slices.SortFunc(ss, func(a, b span) int { return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.end, b.end)) })
		}
		sortSpans(want)
		sortSpans(got)
		if !slices.Equal(got, want) {
			t.Errorf("find(%q, %q, %v) = %v with the bound, %v without", s, secret, cut, got, want)
		}
	})
}
