package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
)

// env is what every setup needs to start its processes.
type env struct {
	bin    string    // directory holding test-upstream and mcp-gate
	self   string    // this binary, which runs the pass-through peer
	dir    string    // the run's scratch directory
	policy string    // an allow-everything policy file for the gate
	logs   io.Writer // child processes' stderr
}

func (e *env) upstream() string { return filepath.Join(e.bin, "test-upstream") }
func (e *env) gate() string     { return filepath.Join(e.bin, "mcp-gate") }

// system is one started system under test.
type system struct {
	// sessions returns n initialized client sessions for n workers, opening
	// more as needed. A stdio system has a single connection, which its
	// workers share.
	sessions func(ctx context.Context, n int) ([]*client.Client, error)
	// pid is the process in the middle (the gate or the pass-through),
	// sampled for memory and CPU; 0 when there is none.
	pid int
	// graphHits counts the requests its PIM emulator served; nil when the
	// system has none.
	graphHits func() int
	stop      func()
}

// setup starts a system under test. profile, when not empty, is the file
// the process in the middle writes its CPU profile to as it exits.
type setup struct {
	name  string
	start func(ctx context.Context, e *env, protocol, profile string) (*system, error)
}

// profileEnv is the environment that asks a process for a CPU profile.
func profileEnv(profile string) []string {
	if profile == "" {
		return nil
	}
	return []string{cmdline.CPUProfileEnv + "=" + profile}
}

var (
	directStdio = setup{"direct stdio", func(ctx context.Context, e *env, protocol, _ string) (*system, error) {
		return startStdio(ctx, e, protocol, nil, e.upstream())
	}}
	gateStdio = setup{"gate stdio→stdio", func(ctx context.Context, e *env, protocol, profile string) (*system, error) {
		return startStdio(ctx, e, protocol, profileEnv(profile), e.gate(), "--policy", e.policy, "--", e.upstream())
	}}
	peerStdio = setup{"pass-through stdio→stdio", func(ctx context.Context, e *env, protocol, profile string) (*system, error) {
		return startStdio(ctx, e, protocol, profileEnv(profile), e.self, passthroughCommand, "--", e.upstream())
	}}
	directHTTP = setup{"direct http", func(ctx context.Context, e *env, protocol, _ string) (*system, error) {
		up, url, err := startAnnounced(ctx, e, upstreamAnnounce, nil, e.upstream(), "--transport", "http", "--listen", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		return httpSystem(url, protocol, 0, up), nil
	}}
	gateHTTPStdio = setup{"gate http→stdio", func(ctx context.Context, e *env, protocol, profile string) (*system, error) {
		return startHTTPStdio(ctx, e, protocol, profile, gateAnnounce, e.gate(), "serve", "--listen", "127.0.0.1:0", "--policy", e.policy, "--", e.upstream())
	}}
	peerHTTPStdio = setup{"pass-through http→stdio", func(ctx context.Context, e *env, protocol, profile string) (*system, error) {
		return startHTTPStdio(ctx, e, protocol, profile, peerAnnounce, e.self, passthroughCommand, "--listen", "127.0.0.1:0", "--", e.upstream())
	}}
	gateHTTPHTTP = setup{"gate http→http", func(ctx context.Context, e *env, protocol, profile string) (*system, error) {
		return startHTTPHTTP(ctx, e, protocol, profile, gateAnnounce, e.gate(), "serve", "--listen", "127.0.0.1:0", "--policy", e.policy, "--upstream", "test=")
	}}
	peerHTTPHTTP = setup{"pass-through http→http", func(ctx context.Context, e *env, protocol, profile string) (*system, error) {
		return startHTTPHTTP(ctx, e, protocol, profile, peerAnnounce, e.self, passthroughCommand, "--listen", "127.0.0.1:0", "--upstream", "")
	}}
)

// startHTTPStdio starts command, which serves HTTP in front of a stdio
// upstream it starts itself.
func startHTTPStdio(ctx context.Context, e *env, protocol, profile string, announce *regexp.Regexp, command string, args ...string) (*system, error) {
	mid, url, err := startAnnounced(ctx, e, announce, profileEnv(profile), command, args...)
	if err != nil {
		return nil, err
	}
	return httpSystem(url, protocol, mid.Process.Pid, mid), nil
}

// startHTTPHTTP starts the test upstream over HTTP, then command in front
// of it: its last argument is completed with the upstream's URL.
func startHTTPHTTP(ctx context.Context, e *env, protocol, profile string, announce *regexp.Regexp, command string, args ...string) (*system, error) {
	up, upURL, err := startAnnounced(ctx, e, upstreamAnnounce, nil, e.upstream(), "--transport", "http", "--listen", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	args[len(args)-1] += upURL
	mid, url, err := startAnnounced(ctx, e, announce, profileEnv(profile), command, args...)
	if err != nil {
		stopProcess(up)
		return nil, err
	}
	return httpSystem(url, protocol, mid.Process.Pid, mid, up), nil
}

// allowAllPolicy lets every call through, so the gate's cost is measured
// without an approval step (but with its audit record). %q is the audit
// file, kept in the run's scratch directory.
const allowAllPolicy = "version: 1\naudit:\n  path: %q\ntools:\n  \"*\": allow\n"

// startStdio spawns command as an MCP server on the client's stdio, with
// procEnv added to its environment. Unless it is the test upstream itself,
// command is the process in the middle, whose memory and CPU are sampled.
func startStdio(ctx context.Context, e *env, protocol string, procEnv []string, command string, args ...string) (*system, error) {
	var cmd *exec.Cmd
	t := transport.NewStdioWithOptions(command, procEnv, args,
		transport.WithCommandStderrWriter(e.logs),
		transport.WithCommandFunc(func(_ context.Context, command string, env, args []string) (*exec.Cmd, error) {
			cmd = exec.Command(command, args...)
			cmd.Env = append(os.Environ(), env...)
			return cmd, nil
		}))
	cli := client.NewClient(t)
	if err := cli.Start(ctx); err != nil {
		return nil, fmt.Errorf("start %s: %w", command, err)
	}
	if err := initialize(ctx, cli, protocol); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%s: %w", command, err)
	}
	sys := &system{
		sessions: func(_ context.Context, n int) ([]*client.Client, error) {
			out := make([]*client.Client, n)
			for i := range out {
				out[i] = cli
			}
			return out, nil
		},
		stop: func() { cli.Close() },
	}
	if command != e.upstream() {
		sys.pid = cmd.Process.Pid
	}
	return sys, nil
}

// httpSystem serves sessions from the Streamable HTTP endpoint url; procs
// are stopped in order when the system stops.
func httpSystem(url, protocol string, pid int, procs ...*exec.Cmd) *system {
	var clients []*client.Client
	return &system{
		sessions: func(ctx context.Context, n int) ([]*client.Client, error) {
			for len(clients) < n {
				// A transport of its own per session, as separate clients
				// would have: a shared one keeps only two idle connections
				// per host and re-dials for the other workers.
				hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
				cli, err := client.NewStreamableHttpClient(url, transport.WithHTTPBasicClient(hc))
				if err != nil {
					return nil, err
				}
				clients = append(clients, cli)
				if err := cli.Start(ctx); err != nil {
					return nil, fmt.Errorf("connect %s: %w", url, err)
				}
				if err := initialize(ctx, cli, protocol); err != nil {
					return nil, fmt.Errorf("%s: %w", url, err)
				}
			}
			return clients[:n], nil
		},
		pid: pid,
		stop: func() {
			for _, c := range clients {
				c.Close()
			}
			for _, p := range procs {
				stopProcess(p)
			}
		},
	}
}

// initialize opens a session the way MCP clients do: the handshake in the
// protocol version asked for, then the tool list, which a gate answers once
// its upstreams have reported.
func initialize(ctx context.Context, cli *client.Client, protocol string) error {
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = protocol
	req.Params.ClientInfo = mcp.Implementation{Name: "mcp-gate-bench", Version: "1"}
	if _, err := cli.Initialize(ctx, req); err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	if _, err := cli.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
		return fmt.Errorf("list tools: %w", err)
	}
	return nil
}

// How the processes say where they listen: test-upstream prints a line, the
// gate logs its Streamable HTTP URL, and so does the pass-through.
var (
	upstreamAnnounce = regexp.MustCompile(`listening on (http://\S+)`)
	gateAnnounce     = regexp.MustCompile(`streamable=(http://\S+)`)
	peerAnnounce     = regexp.MustCompile(`passthrough streamable=(http://\S+)`)
)

// announceTimeout bounds how long a process may take to say where it listens.
const announceTimeout = 10 * time.Second

// startAnnounced starts command and waits for its stderr to match announce,
// returning the first submatch (the URL). Its stderr then keeps flowing to
// e.logs. procEnv is added to its environment.
func startAnnounced(ctx context.Context, e *env, announce *regexp.Regexp, procEnv []string, command string, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(command, args...)
	cmd.Env = append(os.Environ(), procEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start %s: %w", command, err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		announced := false
		for sc.Scan() {
			fmt.Fprintln(e.logs, sc.Text())
			if m := announce.FindStringSubmatch(sc.Text()); !announced && m != nil {
				announced = true
				found <- m[1]
			}
		}
		close(found)
	}()
	ctx, cancel := context.WithTimeout(ctx, announceTimeout)
	defer cancel()
	select {
	case url, ok := <-found:
		if ok {
			return cmd, url, nil
		}
		err = errors.New("exited without saying where it listens")
	case <-ctx.Done():
		err = fmt.Errorf("did not say where it listens: %w", ctx.Err())
	}
	stopProcess(cmd)
	return nil, "", fmt.Errorf("%s: %w", command, err)
}

// stopGrace is how long a process gets between SIGTERM and SIGKILL.
const stopGrace = 5 * time.Second

func stopProcess(cmd *exec.Cmd) {
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopGrace):
		_ = cmd.Process.Kill()
		<-exited
	}
}
