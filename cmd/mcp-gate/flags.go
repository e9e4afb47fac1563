package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/metrics"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
	"github.com/mcp-gate/mcp-gate/internal/spell"
)

// logLevelEnv sets the log level when --log-level is not given.
const logLevelEnv = "MCP_GATE_LOG_LEVEL"

// proxyFlags are the flags shared by the stdio and serve commands.
type proxyFlags struct {
	policy     string
	logLevel   string
	upstreams  upstreamList
	maxMessage int64
	initWait   time.Duration
	bounds     httpBounds // serve only; zero (the defaults) in stdio mode
	// single: one client is served (stdio), whose capabilities the
	// upstreams are initialized with.
	single bool
}

// httpBounds are serve's limits on its HTTP clients.
type httpBounds struct {
	sessionIdle, bodyTimeout time.Duration
	maxSessions, maxCalls    int
}

func (b *httpBounds) register(fs *flag.FlagSet) {
	fs.DurationVar(&b.sessionIdle, "session-idle", proxy.DefaultSessionIdle, "expire a session unused for this `duration`; its client gets 404 and initializes anew")
	fs.IntVar(&b.maxSessions, "max-sessions", proxy.DefaultMaxSessions, "the most live HTTP sessions (`n`); another initialize is answered 503")
	fs.IntVar(&b.maxCalls, "max-calls-in-flight", proxy.DefaultMaxCallsInFlight, "the most tool calls (`n`) one principal may have in flight, approval waits included; the next is refused (HTTP 429)")
	fs.DurationVar(&b.bodyTimeout, "body-timeout", proxy.DefaultBodyTimeout, "the longest a request body may take to arrive (`duration`); a slower one is answered 408")
}

func (f *proxyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.policy, "policy", defaultPolicyPath, "policy `file`; mcp-gate does not start without one")
	fs.StringVar(&f.logLevel, "log-level", os.Getenv(logLevelEnv), "log `level`: debug, info, warn or error (env "+logLevelEnv+"; default info)")
	fs.Var(&f.upstreams, "upstream", "a named upstream: `NAME=COMMAND` (with its arguments) or NAME=URL; repeatable")
	fs.Int64Var(&f.maxMessage, "max-message-bytes", proxy.DefaultMaxMessageBytes, "the largest client message (stdio line or HTTP body) accepted, in `bytes`; a longer one is answered with an error and discarded")
	fs.DurationVar(&f.initWait, "init-wait", proxy.DefaultInitWait, "how long initialize waits for upstreams still starting (`duration`), so that their capabilities and instructions are in its answer")
}

// stdioFlags is the flag set of stdio mode, which the top-level help shows.
func stdioFlags() (*flag.FlagSet, *proxyFlags) {
	fs := flag.NewFlagSet("mcp-gate", flag.ContinueOnError)
	f := proxyFlags{single: true}
	f.register(fs)
	return fs, &f
}

// upstreamCommand returns the upstream command: what follows "--" in args,
// which fs has parsed. Any other argument left over, a misspelt subcommand
// or a command missing its "--", is never run: it is a usage error, with
// text as the help.
func upstreamCommand(fs *flag.FlagSet, args []string, text string, stderr io.Writer) ([]string, error) {
	rest := fs.Args()
	if len(rest) == 0 {
		return nil, nil
	}
	if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
		return rest, nil
	}
	word := rest[0]
	problem := fmt.Sprintf("unknown command %q: an upstream command goes after --, as in mcp-gate [flags] -- %s", word, strings.Join(rest, " "))
	if _, ok := commands[word]; ok {
		problem = fmt.Sprintf("%q is a command of its own and comes first: mcp-gate %s ...", word, word)
	} else if near := spell.Closest(word, slices.Collect(maps.Keys(commands))); near != "" {
		problem = fmt.Sprintf("unknown command %q (did you mean %s?)", word, near)
	}
	return nil, cmdline.UsageError(stderr, fs, text, "mcp-gate: "+problem)
}

// upstreamList collects --upstream values.
type upstreamList []proxy.UpstreamConfig

// String lists the names; the flag package shows it as the default, so
// none is "".
func (l *upstreamList) String() string {
	names := make([]string, len(*l))
	for i, u := range *l {
		names[i] = u.Name
	}
	return strings.Join(names, ", ")
}

func (l *upstreamList) Set(v string) error {
	name, spec, ok := strings.Cut(v, "=")
	spec = strings.TrimSpace(spec)
	if !ok || name == "" || spec == "" {
		return errors.New("want NAME=COMMAND or NAME=URL")
	}
	u := proxy.UpstreamConfig{Name: name}
	if strings.HasPrefix(spec, "http://") || strings.HasPrefix(spec, "https://") {
		u.URL = spec
	} else {
		u.Command = strings.Fields(spec)
	}
	*l = append(*l, u)
	return nil
}

// newLogger logs text to stderr at the named level.
func newLogger(stderr io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if level != "" {
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
		}
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: l})), nil
}

// liveHeap adds go_gc_heap_live_bytes (the heap the last GC found live) to
// the Go collector's figures: unlike the go_memstats heap figures it does
// not count garbage not yet collected, so a leak shows as a line that does
// not come back down.
var liveHeap = collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/heap/live:bytes$`)})

// gateway is a running gate: the proxy and the policy that guards it.
type gateway struct {
	*proxy.Proxy
	gating  *gating
	log     *slog.Logger
	metrics *prometheus.Registry // what /metrics serves
	stopUI  func()               // stops the approvals page
	// tokenKeys, with serve.auth, reports whether the tenant's signing
	// keys are held (fetching them if not): a readiness check.
	tokenKeys func(context.Context) error
}

// Close stops the approvals page and the upstreams, then closes the audit log.
func (g *gateway) Close() error {
	g.stopUI()
	return errors.Join(g.Proxy.Close(), g.gating.Close())
}

// newGateway loads the policy named by f and builds the proxy, with the gate
// on its call path, in front of cmd (the command after "--"), f's
// --upstream flags or the policy's upstreams:. The policy file is watched
// until ctx ends.
func newGateway(ctx context.Context, f *proxyFlags, cmd []string, stderr io.Writer) (*gateway, error) {
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return nil, err
	}
	if f.maxMessage < 1024 {
		return nil, fmt.Errorf("--max-message-bytes %d: want at least 1024", f.maxMessage)
	}
	if f.initWait <= 0 {
		return nil, fmt.Errorf("--init-wait %s: want a positive duration", f.initWait)
	}
	if b := f.bounds; b.sessionIdle < 0 || b.bodyTimeout < 0 || b.maxSessions < 0 || b.maxCalls < 0 {
		return nil, errors.New("--session-idle, --body-timeout, --max-sessions and --max-calls-in-flight must not be negative")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(liveHeap), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := metrics.New(reg)
	if err != nil {
		return nil, err
	}
	gt, err := loadGating(f.policy, log, stderr, m)
	if err != nil {
		return nil, err
	}
	ups, err := chooseUpstreams(cmd, f.upstreams, gt.upstreams())
	if err != nil {
		gt.Close()
		return nil, err
	}
	p, err := proxy.New(ctx, proxy.Options{
		Upstreams:  ups,
		Middleware: gt.gate.Middleware,
		ToolFilter: gt.gate.FilterTool,
		Asks:       gt.gate.Asks,
		Logger:     log,
		Stderr:     stderr,
		Version:    version,

		MaxMessageBytes:  f.maxMessage,
		InitWait:         f.initWait,
		SessionIdle:      f.bounds.sessionIdle,
		MaxSessions:      f.bounds.maxSessions,
		MaxCallsInFlight: f.bounds.maxCalls,
		BodyTimeout:      f.bounds.bodyTimeout,
		SingleClient:     f.single,
	})
	if err != nil {
		gt.Close()
		return nil, err
	}
	if err := m.GaugeFunc("sessions", "HTTP client sessions open now.", func() float64 { return float64(p.Sessions()) }); err != nil {
		_ = errors.Join(p.Close(), gt.Close())
		return nil, err
	}
	g := &gateway{Proxy: p, gating: gt, log: log, metrics: reg}
	if g.stopUI, err = serveUI(g); err != nil {
		_ = errors.Join(p.Close(), gt.Close())
		return nil, err
	}
	go gt.watch(ctx, p.NotifyToolsChanged)
	// The garbage of starting (package initialisation allocates 2.3 MB,
	// 1.7 MB of it mcp-go's JSON Schema library compiling its
	// meta-schemas; the policy load; the metrics registry) goes back to the
	// system now rather than whenever the runtime gets to it: about 1 MiB
	// less resident while idle (docs/BENCHMARKS.md).
	debug.FreeOSMemory()
	return g, nil
}

// chooseUpstreams picks the upstreams from exactly one of: the command after
// "--", --upstream flags, the policy's upstreams: section.
func chooseUpstreams(cmd []string, flags, fromPolicy []proxy.UpstreamConfig) ([]proxy.UpstreamConfig, error) {
	var sources []string
	var ups []proxy.UpstreamConfig
	if len(cmd) > 0 {
		sources, ups = append(sources, "a command after --"), []proxy.UpstreamConfig{{Name: upstreamName(cmd), Command: cmd}}
	}
	if len(flags) > 0 {
		sources, ups = append(sources, "--upstream"), flags
	}
	if len(fromPolicy) > 0 {
		sources, ups = append(sources, "the policy's upstreams:"), fromPolicy
	}
	switch len(sources) {
	case 0:
		return nil, errors.New("no upstream: give a command after --, e.g. mcp-gate -- npx -y @modelcontextprotocol/server-everything, or list upstreams: in the policy")
	case 1:
		return ups, nil
	}
	return nil, fmt.Errorf("upstreams come from %s: give only one of them", strings.Join(sources, " and "))
}

// upstreamName names the single upstream after its command, for logs and
// stderr prefixes.
func upstreamName(cmd []string) string {
	name := cmd[0]
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return name
}
