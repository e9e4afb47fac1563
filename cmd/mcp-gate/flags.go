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
	fs.StringVar(&f.policy, "policy", "", "policy file (not enforced yet: every call is allowed)")
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

// newProxy parses the shared flags and the upstream after "--" and builds
// the proxy. fs must already hold the command's own flags.
func newProxy(ctx context.Context, fs *flag.FlagSet, args []string, stderr io.Writer) (*proxy.Proxy, *slog.Logger, error) {
	var f proxyFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, exitError(2)
	}
	log, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return nil, nil, err
	}
	ups := []proxy.UpstreamConfig(f.upstreams)
	if cmd := fs.Args(); len(cmd) > 0 {
		if len(ups) > 0 {
			return nil, nil, errors.New("give either a command after -- or --upstream, not both")
		}
		ups = []proxy.UpstreamConfig{{Name: upstreamName(cmd), Command: cmd}}
	}
	if len(ups) == 0 {
		return nil, nil, errors.New("no upstream: give a command after --, e.g. mcp-gate -- npx -y @modelcontextprotocol/server-everything")
	}
	if f.policy != "" {
		log.Warn("policy enforcement is not built yet: every call is allowed", "policy", f.policy)
	}
	p, err := proxy.New(ctx, proxy.Options{
		Upstreams: ups,
		Logger:    log,
		Stderr:    stderr,
		Version:   version,
	})
	if err != nil {
		return nil, nil, err
	}
	return p, log, nil
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
