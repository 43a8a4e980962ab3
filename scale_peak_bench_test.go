//go:build linux || darwin

package twitchoauth

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkUserTokensMassRefreshPeak measures the peak memory (the process's maximum resident
// set, peak-MB, with the peaks of the Go heap in use and of the goroutines' stacks) of
// BenchmarkUserTokensMassRefresh's job: 10,000 users' expired tokens asked for at once, and its
// wall time (ms/op). Each runs in a process of its own, started for it, the fake
// Twitch in it as in that benchmark, so that one's peak is not the other's: "UserTokens" through a
// registry, "floor" as bare net/http requests, one goroutine each. An op is one such process.
func BenchmarkUserTokensMassRefreshPeak(b *testing.B) {
	if job := os.Getenv("TWITCHOAUTH_PEAK_JOB"); job != "" {
		peakChild(b, job)
		return
	}
	for _, job := range []string{"UserTokens", "floor"} {
		b.Run(job, func(b *testing.B) {
			var peak, wall, heap, stack float64
			for range b.N {
				cmd := exec.CommandContext(b.Context(), os.Args[0], "-test.run=^$",
					"-test.bench=^BenchmarkUserTokensMassRefreshPeak$", "-test.benchtime=1x")
				cmd.Env = append(os.Environ(), "TWITCHOAUTH_PEAK_JOB="+job)
				cmd.Stderr = os.Stderr
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("%s: %v", job, err)
				}
				p, w, h, st := parsePeak(b, string(out))
				peak, wall, heap, stack = peak+p, wall+w, heap+h, stack+st
			}
			n := float64(b.N)
			b.ReportMetric(peak/n, "peak-MB")
			b.ReportMetric(heap/n, "heap-MB")
			b.ReportMetric(stack/n, "stack-MB")
			b.ReportMetric(wall/n, "ms/op")
		})
	}
}

// peakChild runs job once and prints the process's peak resident set, the job's wall time, and
// the peaks of the Go heap in use and of the goroutines' stacks, sampled every 2 ms.
func peakChild(b *testing.B, job string) {
	fake, store := expiredUsers(b)
	defer fake.Close()
	run := massRefresh
	if job == "floor" {
		run = massRefreshFloor
	}
	stop, sampled := make(chan struct{}), make(chan [2]uint64)
	go func() {
		var most [2]uint64
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			most[0], most[1] = max(most[0], m.HeapInuse), max(most[1], m.StackInuse)
			select {
			case <-stop:
				sampled <- most
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	run(b, fake, store)
	wall := time.Since(start)
	close(stop)
	most := <-sampled
	fmt.Printf("PEAK %d %d %d %d\n", peakRSS(b), wall.Nanoseconds(), most[0]>>10, most[1]>>10)
}

// peakRSS returns the process's peak resident set in KiB. On Linux it is VmHWM, this program's
// own: getrusage's maximum also counts the parent's pages the child shared until its exec, which
// after an earlier benchmark in the parent is the parent's peak, not the child's.
func peakRSS(b *testing.B) int64 {
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(status)) {
			if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err != nil {
					b.Fatalf("VmHWM %q: %v", rest, err)
				}
				return kib
			}
		}
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	maxrss := ru.Maxrss // KiB on Linux, bytes on darwin
	if runtime.GOOS == "darwin" {
		maxrss /= 1024
	}
	return maxrss
}

// parsePeak reads a child's PEAK line: its peak resident set, its wall time in ms, and its
// peaks of heap and stacks, in MB.
func parsePeak(b *testing.B, out string) (rss, ms, heap, stack float64) {
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		f := strings.Fields(sc.Text())
		if len(f) != 5 || f[0] != "PEAK" {
			continue
		}
		var v [4]float64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseFloat(f[i+1], 64); err != nil {
				b.Fatalf("the child's PEAK line %q: %v", sc.Text(), err)
			}
		}
		return v[0] / 1024, v[1] / 1e6, v[2] / 1024, v[3] / 1024
	}
	b.Fatalf("no PEAK line in the child's output:\n%s", out)
	return
}
