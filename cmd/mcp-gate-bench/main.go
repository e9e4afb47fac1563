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
	stopProfile := cmdline.StartCPUProfile(os.Stderr) // the pass-through's, when it runs as the peer
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(cmdline.Code("mcp-gate-bench", os.Stderr, err))
}

const usage = `Usage: mcp-gate-bench [flags]
       mcp-gate-bench passthrough [--listen ADDR] (--upstream URL | -- COMMAND ARGS...)

Measures what mcp-gate costs: the same echo calls made directly to the test
upstream, through the gate and through a plain mcp-go pass-through (the
peer, which this binary runs as its passthrough command), side by side, with
latency percentiles, throughput, their ratios, CPU per call and memory, and
holds the gate to its targets. It runs the binaries that make build puts in
--bin.
`

// benchCase compares a subject with its baseline at one concurrency, with
// clients speaking one protocol version, and with a peer when it has one:
// a plain mcp-go pass-through doing the subject's job without its policy
// and audit.
// To measure something new (say, a gated call on a cached grant against an
// ungated one), add a setup and a row here.
type benchCase struct {
	name        string
	concurrency int
	protocol    string
	baseline    setup
	subject     setup
	peer        setup // none when its start is nil
}

// Both protocol generations: desktop clients use the 2025-11-25 handshake
// today; mcp-go's client prefers 2026-07-28, and the gate serves each on a
// different path.
const (
	legacy = mcp.ProtocolVersion20251125
	modern = mcp.ProtocolVersion20260728
)

var cases = []benchCase{
	{"stdio→stdio", 1, legacy, directStdio, gateStdio, peerStdio},
	{"HTTP→stdio", 1, legacy, directHTTP, gateHTTPStdio, peerHTTPStdio},
	{"HTTP→stdio", 8, legacy, directHTTP, gateHTTPStdio, peerHTTPStdio},
	{"HTTP→HTTP", 1, legacy, directHTTP, gateHTTPHTTP, peerHTTPHTTP},
	{"HTTP→HTTP", 8, legacy, directHTTP, gateHTTPHTTP, peerHTTPHTTP},
	{"stdio→stdio", 1, modern, directStdio, gateStdio, peerStdio},
	{"HTTP→stdio", 1, modern, directHTTP, gateHTTPStdio, peerHTTPStdio},
	{"HTTP→stdio", 8, modern, directHTTP, gateHTTPStdio, peerHTTPStdio},
	{"HTTP→HTTP", 1, modern, directHTTP, gateHTTPHTTP, peerHTTPHTTP},
	{"HTTP→HTTP", 8, modern, directHTTP, gateHTTPHTTP, peerHTTPHTTP},
	{cachedGrantCase, 1, legacy, gateStdio, gateStdioCachedGrant, setup{}},
	{cachedGrantCase, 1, modern, gateStdio, gateStdioCachedGrant, setup{}},
}

// target is a goal the results are held to (issue 15's table).
type target struct {
	what string // what is compared
	goal string // the goal, as printed
	// value returns the gate's figure, the peer's when there is one ("—"
	// when not), whether the gate's meets the goal, and whether it was
	// measured at all.
	value func(results map[string]result) (got, peer string, met, ok bool)
}

var targets = append([]target{
	p50Target(legacy, 1.8), p50Target(modern, 1.6),
	throughputTarget("HTTP→stdio", legacy, 75), throughputTarget("HTTP→stdio", modern, 75),
	throughputTarget("HTTP→HTTP", legacy, 60), throughputTarget("HTTP→HTTP", modern, 60),
	cpuTarget(legacy, 50*time.Microsecond), cpuTarget(modern, 50*time.Microsecond),
	{"pass-through gate idle RSS (largest of its runs)", "≤ 12 MiB", func(results map[string]result) (string, string, bool, bool) {
		var idle, peer int64
		for key, r := range results {
			// A gate with roles also holds a Graph client: not a pass-through.
			if !strings.HasPrefix(key, cachedGrantCase) {
				idle, peer = max(idle, r.subject.idle.rssKB), max(peer, r.peer.idle.rssKB)
			}
		}
		return mib(idle), mib(peer), idle <= 12*1024, idle > 0
	}},
}, append(cachedGrantTargets(legacy), cachedGrantTargets(modern)...)...)

func p50Target(protocol string, goal float64) target {
	return target{"stdio→stdio c=1 " + protocol + " p50, gate/direct", fmt.Sprintf("≤ %.1f×", goal), ratioTarget(caseKey("stdio→stdio", 1, protocol), func(r result, s side) float64 {
		return ratio(float64(s.P50), float64(r.baseline.P50))
	}, func(v float64) bool { return v <= goal }, "%.2f×")}
}

func throughputTarget(name, protocol string, goal float64) target {
	return target{name + " c=8 " + protocol + " throughput, gate/direct HTTP", fmt.Sprintf("≥ %.0f%%", goal), ratioTarget(caseKey(name, 8, protocol), func(r result, s side) float64 {
		return 100 * ratio(s.Throughput, r.baseline.Throughput)
	}, func(v float64) bool { return v >= goal }, "%.0f%%")}
}

func cpuTarget(protocol string, goal time.Duration) target {
	return target{"stdio→stdio c=1 " + protocol + " CPU per call of the process in the middle", "≤ " + dur(goal), func(results map[string]result) (string, string, bool, bool) {
		r, ok := results[caseKey("stdio→stdio", 1, protocol)]
		if !ok || r.err != nil || r.subject.cpuPerCall == 0 {
			return "", "", false, false
		}
		return dur(r.subject.cpuPerCall), dur(r.peer.cpuPerCall), r.subject.cpuPerCall <= goal, true
	}}
}

func ratioTarget(key string, value func(result, side) float64, met func(float64) bool, format string) func(map[string]result) (string, string, bool, bool) {
	return func(results map[string]result) (string, string, bool, bool) {
		r, ok := results[key]
		if !ok || r.err != nil {
			return "", "", false, false
		}
		v, peer := value(r, r.subject), "—"
		if r.hasPeer {
			peer = fmt.Sprintf(format, value(r, r.peer))
		}
		return fmt.Sprintf(format, v), peer, met(v), !math.IsNaN(v)
	}
}

// side is what one measured system did.
type side struct {
	stats
	idle       memory        // RSS of the process in the middle once up, before any call
	peakKB     int64         // its RSS at its peak; 0 when unknown
	cpuPerCall time.Duration // its CPU time per call; 0 when unknown
}

// result is one case's outcome.
type result struct {
	baseline      stats
	subject, peer side
	hasPeer       bool
	graphHits     int           // Graph requests during the measured calls; -1 when no emulator runs
	measured      time.Duration // from the first measured call to the last, every system's rounds
	err           error
}

func caseKey(name string, c int, protocol string) string {
	return fmt.Sprintf("%s c=%d %s", name, c, protocol)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == passthroughCommand {
		return runPassthrough(ctx, args[1:], stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("mcp-gate-bench", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "`directory` holding the test-upstream and mcp-gate binaries")
	n := fs.Int("n", 2000, "measured calls per case")
	warmup := fs.Int("warmup", 200, "unmeasured calls to each system before measuring")
	rounds := fs.Int("rounds", 10, "alternating rounds of direct, gate and pass-through calls the measured calls are split into")
	only := fs.String("run", "", "only cases whose name (e.g. \"HTTP→stdio c=8 2025-11-25\") matches this regexp")
	profiles := fs.String("cpuprofile", "", "write a CPU profile of each case's gate and pass-through, over the whole case, into `directory` (read with go tool pprof BINARY FILE)")
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
	if *profiles != "" {
		if err := os.MkdirAll(*profiles, 0o755); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
	}
	me, err := self()
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "mcp-gate-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{bin: *bin, self: me, dir: dir, policy: filepath.Join(dir, "policy.yaml"), logs: io.Discard}
	if *verbose {
		e.logs = stderr
	}
	policy := fmt.Sprintf(allowAllPolicy, filepath.Join(dir, "audit.jsonl"))
	if err := os.WriteFile(e.policy, []byte(policy), 0o600); err != nil {
		return err
	}

	b := bench{env: e, n: *n, warmup: *warmup, rounds: *rounds, profiles: *profiles}
	results := map[string]result{}
	var failed bool
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(stdout, "mcp-gate-bench: %d echo calls to each side per case in %d alternating rounds, after %d warm-up; %d CPUs, %s, load average at start %s\n",
		*n, *rounds, *warmup, runtime.NumCPU(), runtime.Version(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	fmt.Fprintln(stdout, "\nGate is mcp-gate with an allow-all policy and its audit log; peer is a plain mcp-go pass-through (mcp-gate-bench passthrough: no policy, no audit). CPU/call and RSS are the process in the middle's.")
	fmt.Fprintln(stdout)
	fmt.Fprintln(stdout, "| case | c | protocol | direct p50 | direct p99 | direct calls/s | gate p50 | gate p99 | gate calls/s | peer p50 | peer calls/s | p50 gate/direct (peer) | p99 gate/direct | throughput gate/direct (peer) | CPU/call gate (peer) | idle RSS gate, anon (peer) | gate peak RSS |")
	fmt.Fprintln(stdout, "| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |")
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
		peerP50, peerTput, p50Ratio, tputRatio, cpu, idle := "—", "—", "", "", "", ""
		if r.hasPeer {
			peerP50, peerTput = dur(r.peer.P50), fmt.Sprintf("%.0f", r.peer.Throughput)
			p50Ratio = fmt.Sprintf(" (%.2f×)", ratio(float64(r.peer.P50), float64(r.baseline.P50)))
			tputRatio = fmt.Sprintf(" (%.0f%%)", 100*ratio(r.peer.Throughput, r.baseline.Throughput))
			cpu, idle = " ("+dur(r.peer.cpuPerCall)+")", " ("+mib(r.peer.idle.rssKB)+")"
		}
		fmt.Fprintf(stdout, "| %s | %d | %s | %s | %s | %.0f | %s | %s | %.0f | %s | %s | %.2f×%s | %.2f× | %.0f%%%s | %s%s | %s, %s%s | %s |\n",
			bc.name, bc.concurrency, bc.protocol,
			dur(r.baseline.P50), dur(r.baseline.P99), r.baseline.Throughput,
			dur(r.subject.P50), dur(r.subject.P99), r.subject.Throughput,
			peerP50, peerTput,
			ratio(float64(r.subject.P50), float64(r.baseline.P50)), p50Ratio,
			ratio(float64(r.subject.P99), float64(r.baseline.P99)),
			100*ratio(r.subject.Throughput, r.baseline.Throughput), tputRatio,
			dur(r.subject.cpuPerCall), cpu,
			mib(r.subject.idle.rssKB), mib(r.subject.idle.anonKB), idle, mib(r.subject.peakKB))
	}

	fmt.Fprintln(stdout, "\n| target | goal | gate | peer | |")
	fmt.Fprintln(stdout, "| --- | --- | --: | --: | --- |")
	for _, t := range targets {
		got, peer, met, ok := t.value(results)
		verdict := "met"
		switch {
		case !ok:
			got, peer, verdict = "—", "—", "not measured"
		case !met:
			verdict = "MISSED"
		}
		fmt.Fprintf(stdout, "| %s | %s | %s | %s | %s |\n", t.what, t.goal, got, peer, verdict)
	}
	if *profiles != "" {
		fmt.Fprintf(stdout, "\nCPU profiles in %s: go tool pprof %s FILE (gate), go tool pprof %s FILE (peer)\n", *profiles, e.gate(), me)
	}
	if failed {
		return errors.New("some cases failed (rerun with -v to see the servers' stderr)")
	}
	return nil
}

// bench compares setups.
type bench struct {
	env      *env
	n        int
	warmup   int
	rounds   int
	profiles string // directory for CPU profiles; "" for none
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

// open starts s and opens c sessions. When s has a process in the middle,
// idle is its RSS once it is up and one session has listed the tools,
// before any call.
func (b *bench) open(ctx context.Context, s setup, c int, protocol, profile string) (r *running, idle memory, err error) {
	sys, err := s.start(ctx, b.env, protocol, profile)
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
	if sys.pid != 0 {
		if idle.rssKB, err = rssKB(sys.pid, "VmRSS"); err != nil {
			return nil, idle, err
		}
		if idle.anonKB, err = rssKB(sys.pid, "RssAnon"); err != nil {
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

// profilePath is where the process in the middle of role ("gate" or
// "peer") in case key writes its CPU profile; "" when none is asked for.
func (b *bench) profilePath(key, role string) string {
	if b.profiles == "" {
		return ""
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, key)
	return filepath.Join(b.profiles, name+"."+role+".pprof")
}

// measured is a started system whose process in the middle is sampled.
type measured struct {
	*running
	idle memory
	cpu0 time.Duration
}

// compare runs baseline, subject and peer side by side, alternating rounds
// of calls so that load from elsewhere on the machine falls on all alike.
func (b *bench) compare(ctx context.Context, bc benchCase) (res result) {
	key := caseKey(bc.name, bc.concurrency, bc.protocol)
	base, _, err := b.open(ctx, bc.baseline, bc.concurrency, bc.protocol, "")
	if err != nil {
		return result{err: err}
	}
	defer base.sys.stop()
	systems := []setup{bc.subject}
	roles := []string{"gate"}
	if bc.peer.start != nil {
		systems, roles = append(systems, bc.peer), append(roles, "peer")
	}
	var mids []*measured
	for i, s := range systems {
		r, idle, err := b.open(ctx, s, bc.concurrency, bc.protocol, b.profilePath(key, roles[i]))
		if err != nil {
			return result{err: err}
		}
		defer r.sys.stop()
		mids = append(mids, &measured{running: r, idle: idle})
	}

	subj := mids[0]
	hits0 := -1
	if subj.sys.graphHits != nil {
		hits0 = subj.sys.graphHits()
	}
	for _, m := range mids {
		if m.sys.pid != 0 {
			if m.cpu0, err = cpuTime(m.sys.pid); err != nil {
				return result{err: err}
			}
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
		for j, m := range mids {
			if err := m.round(ctx, n); err != nil {
				return result{err: fmt.Errorf("%s: %w", systems[j].name, err)}
			}
		}
	}
	res = result{baseline: summarize(base.lat, base.wall), graphHits: -1, measured: time.Since(measureStart)}
	if hits0 >= 0 {
		res.graphHits = subj.sys.graphHits() - hits0
	}
	sides := make([]side, len(mids))
	for i, m := range mids {
		sides[i] = side{stats: summarize(m.lat, m.wall), idle: m.idle}
		if m.sys.pid == 0 {
			continue
		}
		if sides[i].peakKB, err = rssKB(m.sys.pid, "VmHWM"); err != nil {
			return result{err: err}
		}
		// The process idles during the other systems' rounds, so nearly
		// all the CPU it used since cpu0 went to its own calls.
		cpu1, err := cpuTime(m.sys.pid)
		if err != nil {
			return result{err: err}
		}
		sides[i].cpuPerCall = (cpu1 - m.cpu0) / time.Duration(len(m.lat))
	}
	res.subject = sides[0]
	if len(sides) > 1 {
		res.peer, res.hasPeer = sides[1], true
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
