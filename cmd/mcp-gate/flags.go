package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

// logLevelEnv sets the log level when --log-level is not given.
const logLevelEnv = "MCP_GATE_LOG_LEVEL"

// proxyFlags are the flags shared by the stdio and serve commands.
type proxyFlags struct {
	policy    string
	logLevel  string
	upstreams upstreamList
}

func (f *proxyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.policy, "policy", defaultPolicyPath, "policy file; mcp-gate does not start without one")
	fs.StringVar(&f.logLevel, "log-level", os.Getenv(logLevelEnv), "debug, info, warn or error (env "+logLevelEnv+"; default info)")
	fs.Var(&f.upstreams, "upstream", "a named upstream, NAME=COMMAND ARGS... or NAME=URL (repeatable)")
}

// upstreamList collects --upstream values.
type upstreamList []proxy.UpstreamConfig

func (l *upstreamList) String() string { return fmt.Sprint(len(*l), " upstreams") }

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

// gateway is a running gate: the proxy and the policy that guards it.
type gateway struct {
	*proxy.Proxy
	gating *gating
	log    *slog.Logger
}

// Close stops the upstreams, then closes the audit log.
func (g *gateway) Close() error {
	return errors.Join(g.Proxy.Close(), g.gating.Close())
}

// newGateway parses the shared flags and the upstream after "--", loads the
// policy and builds the proxy with the gate on its call path. The policy
// file is watched until ctx ends. fs must already hold the command's own
// flags.
func newGateway(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer) (*gateway, error) {
	var f proxyFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, exitError(2)
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return nil, err
	}
	gt, err := loadGating(f.policy, log, stderr)
	if err != nil {
		return nil, err
	}
	ups, err := chooseUpstreams(fs.Args(), f.upstreams, gt.upstreams())
	if err != nil {
		gt.Close()
		return nil, err
	}
	p, err := proxy.New(ctx, proxy.Options{
		Upstreams:  ups,
		Middleware: gt.gate.Middleware,
		ToolFilter: gt.gate.FilterTool,
		Logger:     log,
		Stderr:     stderr,
		Version:    version,
	})
	if err != nil {
		gt.Close()
		return nil, err
	}
	go gt.watch(ctx, p.NotifyToolsChanged)
	return &gateway{Proxy: p, gating: gt, log: log}, nil
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
