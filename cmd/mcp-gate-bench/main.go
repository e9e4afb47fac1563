// Command mcp-gate-bench measures what mcp-gate costs: the same echo calls
// made directly to the test upstream and through the gate, side by side in
// one run, with latency percentiles, throughput, their ratios and the gate's
// memory. It runs binaries that `make build` has put in -bin.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cmdline.Code("mcp-gate-bench", os.Stderr, err))
}

const usage = `Usage: mcp-gate-bench [flags]

Measures what mcp-gate costs: the same echo calls made directly to the test
upstream and through the gate, side by side, with latency percentiles,
throughput, their ratios and the gate's memory. It runs the binaries that
make build puts in --bin.
`

// benchCase compares a subject with its baseline at one concurrency, with
// clients speaking one protocol version.
// To measure something new (say, a gated call on a cached grant against an
// ungated one), add a setup and a row here.
type benchCase struct {
	name        string
	concurrency int
	protocol    string
	baseline    setup
	subject     setup
}

// Both protocol generations: desktop clients use the 2025-11-25 handshake
// today; mcp-go's client prefers 2026-07-28, and the gate serves each on a
// different path.
const (
	legacy = mcp.ProtocolVersion20251125
	modern = mcp.ProtocolVersion20260728
)

var cases = []benchCase{
	{"stdio→stdio", 1, legacy, directStdio, gateStdio},
	{"HTTP→stdio", 1, legacy, directHTTP, gateHTTPStdio},
	{"HTTP→stdio", 8, legacy, directHTTP, gateHTTPStdio},
	{"HTTP→HTTP", 1, legacy, directHTTP, gateHTTPHTTP},
	{"HTTP→HTTP", 8, legacy, directHTTP, gateHTTPHTTP},
	{"stdio→stdio", 1, modern, directStdio, gateStdio},
	{"HTTP→stdio", 1, modern, directHTTP, gateHTTPStdio},
	{"HTTP→stdio", 8, modern, directHTTP, gateHTTPStdio},
	{"HTTP→HTTP", 1, modern, directHTTP, gateHTTPHTTP},
	{"HTTP→HTTP", 8, modern, directHTTP, gateHTTPHTTP},
	{cachedGrantCase, 1, legacy, gateStdio, gateStdioCachedGrant},
	{cachedGrantCase, 1, modern, gateStdio, gateStdioCachedGrant},
}

// target is a goal the results are held to.
type target struct {
	what  string // what is compared
	goal  string // the goal, as printed
	value func(results map[string]result) (got string, met, ok bool)
}

var targets = append([]target{
	p50Target(legacy), p50Target(modern),
	throughputTarget(legacy), throughputTarget(modern),
	{"pass-through gate idle RSS (largest of its runs)", "≤ 15 MiB", func(results map[string]result) (string, bool, bool) {
		var idle int64
		for key, r := range results {
			// A gate with roles also holds a Graph client: not a pass-through.
			if !strings.HasPrefix(key, cachedGrantCase) {
				idle = max(idle, r.idleKB)
			}
		}
		return mib(idle), idle <= 15*1024, idle > 0
	}},
}, append(cachedGrantTargets(legacy), cachedGrantTargets(modern)...)...)

func p50Target(protocol string) target {
	return target{"stdio→stdio c=1 " + protocol + " p50, gate/direct", "≤ 2.0×", ratioTarget(caseKey("stdio→stdio", 1, protocol), func(r result) float64 {
		return ratio(float64(r.subject.P50), float64(r.baseline.P50))
	}, func(v float64) bool { return v <= 2.0 }, "%.2f×")}
}

func throughputTarget(protocol string) target {
	return target{"HTTP→stdio c=8 " + protocol + " throughput, gate/direct HTTP", "≥ 75%", ratioTarget(caseKey("HTTP→stdio", 8, protocol), func(r result) float64 {
		return 100 * ratio(r.subject.Throughput, r.baseline.Throughput)
	}, func(v float64) bool { return v >= 75 }, "%.0f%%")}
}

func ratioTarget(key string, value func(result) float64, met func(float64) bool, format string) func(map[string]result) (string, bool, bool) {
	return func(results map[string]result) (string, bool, bool) {
		r, ok := results[key]
		if !ok || r.err != nil {
			return "", false, false
		}
		v := value(r)
		return fmt.Sprintf(format, v), met(v), !math.IsNaN(v)
	}
}

// result is one case's outcome.
type result struct {
	baseline, subject stats
	idleKB, peakKB    int64         // the gate's RSS after start and at its peak; 0 when unknown
	idleAnonKB        int64         // the anonymous part of idleKB; the rest is mapped binary
	cpuPerCall        time.Duration // the gate's CPU time per call; 0 when unknown
	graphHits         int           // Graph requests during the measured calls; -1 when no emulator runs
	measured          time.Duration // from the first measured call to the last, both systems' rounds
	err               error
}

func caseKey(name string, c int, protocol string) string {
	return fmt.Sprintf("%s c=%d %s", name, c, protocol)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mcp-gate-bench", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "`directory` holding the test-upstream and mcp-gate binaries")
	n := fs.Int("n", 2000, "measured calls per case")
	warmup := fs.Int("warmup", 200, "unmeasured calls to each system before measuring")
	rounds := fs.Int("rounds", 10, "alternating rounds of direct and gate calls the measured calls are split into")
	only := fs.String("run", "", "only cases whose name (e.g. \"HTTP→stdio c=8 2025-11-25\") matches this regexp")
	verbose := fs.Bool("v", false, "copy the servers' stderr to ours")
	if err := cmdline.Parse(fs, args, usage, stdout, stderr); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return cmdline.UsageError(stderr, fs, usage, fmt.Sprintf("mcp-gate-bench: unexpected argument %q", fs.Arg(0)))
	case *rounds < 1 || *n < *rounds:
		return cmdline.UsageError(stderr, fs, usage, "mcp-gate-bench: want --rounds ≥ 1 and --n ≥ --rounds")
	}
	filter, err := regexp.Compile(*only)
	if err != nil {
		return fmt.Errorf("-run: %w", err)
	}

	dir, err := os.MkdirTemp("", "mcp-gate-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{bin: *bin, dir: dir, policy: filepath.Join(dir, "policy.yaml"), logs: io.Discard}
	if *verbose {
		e.logs = stderr
	}
	policy := fmt.Sprintf(allowAllPolicy, filepath.Join(dir, "audit.jsonl"))
	if err := os.WriteFile(e.policy, []byte(policy), 0o600); err != nil {
		return err
	}

	b := bench{env: e, n: *n, warmup: *warmup, rounds: *rounds}
	results := map[string]result{}
	var failed bool
	fmt.Fprintf(stdout, "mcp-gate-bench: %d echo calls to each side per case in %d alternating rounds, after %d warm-up; %d CPUs, %s\n\n", *n, *rounds, *warmup, runtime.NumCPU(), runtime.Version())
	fmt.Fprintln(stdout, "| case | c | protocol | direct p50 | direct p99 | direct calls/s | gate p50 | gate p99 | gate calls/s | p50 gate/direct | p99 gate/direct | throughput gate/direct | gate CPU/call | gate idle RSS (anon) | gate peak RSS |")
	fmt.Fprintln(stdout, "| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |")
	for _, bc := range cases {
		key := caseKey(bc.name, bc.concurrency, bc.protocol)
		if !filter.MatchString(key) {
			continue
		}
		r := b.compare(ctx, bc)
		results[key] = r
		if r.err != nil {
			failed = true
			fmt.Fprintf(stdout, "| %s | %d | %s | error: %v |\n", bc.name, bc.concurrency, bc.protocol, r.err)
			continue
		}
		fmt.Fprintf(stdout, "| %s | %d | %s | %s | %s | %.0f | %s | %s | %.0f | %.2f× | %.2f× | %.0f%% | %s | %s (%s) | %s |\n",
			bc.name, bc.concurrency, bc.protocol,
			dur(r.baseline.P50), dur(r.baseline.P99), r.baseline.Throughput,
			dur(r.subject.P50), dur(r.subject.P99), r.subject.Throughput,
			ratio(float64(r.subject.P50), float64(r.baseline.P50)),
			ratio(float64(r.subject.P99), float64(r.baseline.P99)),
			100*ratio(r.subject.Throughput, r.baseline.Throughput),
			dur(r.cpuPerCall),
			mib(r.idleKB), mib(r.idleAnonKB), mib(r.peakKB))
	}

	fmt.Fprintln(stdout, "\n| target | goal | measured | |")
	fmt.Fprintln(stdout, "| --- | --- | --: | --- |")
	for _, t := range targets {
		got, met, ok := t.value(results)
		verdict := "met"
		switch {
		case !ok:
			got, verdict = "—", "not measured"
		case !met:
			verdict = "MISSED"
		}
		fmt.Fprintf(stdout, "| %s | %s | %s | %s |\n", t.what, t.goal, got, verdict)
	}
	if failed {
		return errors.New("some cases failed (rerun with -v to see the servers' stderr)")
	}
	return nil
}

// bench compares setups.
type bench struct {
	env    *env
	n      int
	warmup int
	rounds int
}

// memory is a process's resident set, in KiB.
type memory struct{ rssKB, anonKB int64 }

// running is a started setup with its sessions open.
type running struct {
	sys      *system
	sessions []*client.Client
	lat      []time.Duration
	wall     time.Duration
}

// open starts s and opens c sessions. When s runs a gate, idleKB is its
// RSS once it is up and one session has listed the tools, before any call.
func (b *bench) open(ctx context.Context, s setup, c int, protocol string) (r *running, idle memory, err error) {
	sys, err := s.start(ctx, b.env, protocol)
	if err != nil {
		return nil, idle, fmt.Errorf("%s: %w", s.name, err)
	}
	defer func() {
		if err != nil {
			sys.stop()
			err = fmt.Errorf("%s: %w", s.name, err)
		}
	}()
	if _, err := sys.sessions(ctx, 1); err != nil {
		return nil, idle, err
	}
	if sys.gatePID != 0 {
		if idle.rssKB, err = rssKB(sys.gatePID, "VmRSS"); err != nil {
			return nil, idle, err
		}
		if idle.anonKB, err = rssKB(sys.gatePID, "RssAnon"); err != nil {
			return nil, idle, err
		}
	}
	sessions, err := sys.sessions(ctx, c)
	if err != nil {
		return nil, idle, err
	}
	if _, err := calls(ctx, sessions, max(b.warmup, c)); err != nil {
		return nil, idle, fmt.Errorf("warm-up: %w", err)
	}
	return &running{sys: sys, sessions: sessions}, idle, nil
}

// round times n calls.
func (r *running) round(ctx context.Context, n int) error {
	start := time.Now()
	lat, err := calls(ctx, r.sessions, n)
	if err != nil {
		return err
	}
	r.wall += time.Since(start)
	r.lat = append(r.lat, lat...)
	return nil
}

// compare runs baseline and subject side by side, alternating rounds of
// calls so that load from elsewhere on the machine falls on both alike.
func (b *bench) compare(ctx context.Context, bc benchCase) (res result) {
	base, _, err := b.open(ctx, bc.baseline, bc.concurrency, bc.protocol)
	if err != nil {
		return result{err: err}
	}
	defer base.sys.stop()
	subj, idle, err := b.open(ctx, bc.subject, bc.concurrency, bc.protocol)
	if err != nil {
		return result{err: err}
	}
	defer subj.sys.stop()

	hits0 := -1
	if subj.sys.graphHits != nil {
		hits0 = subj.sys.graphHits()
	}
	var cpu0 time.Duration
	if subj.sys.gatePID != 0 {
		if cpu0, err = cpuTime(subj.sys.gatePID); err != nil {
			return result{err: err}
		}
	}
	measureStart := time.Now()
	for i := range b.rounds {
		// Spread b.n calls over the rounds; the first rounds take the remainder.
		n := b.n / b.rounds
		if i < b.n%b.rounds {
			n++
		}
		if err := base.round(ctx, n); err != nil {
			return result{err: fmt.Errorf("%s: %w", bc.baseline.name, err)}
		}
		if err := subj.round(ctx, n); err != nil {
			return result{err: fmt.Errorf("%s: %w", bc.subject.name, err)}
		}
	}
	res = result{baseline: summarize(base.lat, base.wall), subject: summarize(subj.lat, subj.wall), idleKB: idle.rssKB, idleAnonKB: idle.anonKB, graphHits: -1,
		measured: time.Since(measureStart)}
	if hits0 >= 0 {
		res.graphHits = subj.sys.graphHits() - hits0
	}
	if subj.sys.gatePID != 0 {
		if res.peakKB, err = rssKB(subj.sys.gatePID, "VmHWM"); err != nil {
			return result{err: err}
		}
		// The gate idles during the baseline's rounds, so nearly all the
		// CPU it used since cpu0 went to the subject's calls.
		cpu1, err := cpuTime(subj.sys.gatePID)
		if err != nil {
			return result{err: err}
		}
		res.cpuPerCall = (cpu1 - cpu0) / time.Duration(len(subj.lat))
	}
	return res
}

// payload is the echo text: checking it comes back proves the call went
// all the way to the upstream.
const payload = "mcp-gate-bench payload"

// calls makes n echo calls, len(sessions) at a time, one worker per
// session, and returns each call's latency.
func calls(ctx context.Context, sessions []*client.Client, n int) ([]time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for _, cli := range sessions {
		wg.Go(func() {
			req := mcp.CallToolRequest{}
			req.Params.Name = "echo"
			req.Params.Arguments = map[string]any{"text": payload}
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				res, err := cli.CallTool(ctx, req)
				lat[i] = time.Since(t0)
				if err == nil {
					err = checkEcho(res)
				}
				if err != nil {
					cancel(fmt.Errorf("call %d: %w", i, err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return lat, nil
}

func checkEcho(res *mcp.CallToolResult) error {
	if res.IsError || len(res.Content) != 1 {
		return fmt.Errorf("unexpected echo result %+v", res)
	}
	if tc, ok := mcp.AsTextContent(res.Content[0]); !ok || tc.Text != payload {
		return fmt.Errorf("echo returned %+v", res.Content[0])
	}
	return nil
}

func dur(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

func mib(kb int64) string {
	if kb == 0 {
		return "—"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", float64(kb)/1024), ".0") + " MiB"
}
