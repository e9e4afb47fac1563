package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// Binaries built once by TestMain.
var (
	GateBin     string // mcp-gate
	UpstreamBin string // test-upstream
	moduleRoot  string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mcp-gate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "find module root:", err)
		return 1
	}
	moduleRoot = strings.TrimSpace(string(root))
	GateBin = filepath.Join(dir, "mcp-gate")
	UpstreamBin = filepath.Join(dir, "test-upstream")
	for bin, pkg := range map[string]string{GateBin: "./cmd/mcp-gate", UpstreamBin: "./cmd/test-upstream"} {
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race") // the gate runs under the race detector too
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = moduleRoot
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// AllowAllPolicy writes a policy that lets every call through, with its
// audit log in the test's temp dir, and returns its path.
func AllowAllPolicy(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	return WritePolicy(t, fmt.Sprintf("version: 1\naudit:\n  path: %q\ntools:\n  \"*\": allow\n", filepath.Join(dir, "audit.jsonl")))
}

// WritePolicy writes a policy file into the test's temp dir.
func WritePolicy(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policies.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Upstream is the argv of the test upstream over stdio, named name.
func Upstream(name string) []string {
	return []string{UpstreamBin, "--name", name}
}

// Everything is the argv of the reference server-everything over stdio.
// It skips the test when node_modules lacks it, except under CI=true, where
// a missing reference server is a failure.
func Everything(t *testing.T) []string {
	t.Helper()
	bin := filepath.Join(moduleRoot, "node_modules", ".bin", "mcp-server-everything")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("server-everything is not installed (%v): run npm ci", err)
		}
		t.Skipf("server-everything is not installed (%v): run npm ci", err)
	}
	return []string{bin, "stdio"}
}

// Protocols are both protocol generations mcp-go speaks, as client options.
var Protocols = []struct {
	Name string
	Opts []client.ClientOption
}{
	{"2025-11-25", []client.ClientOption{client.WithProtocolVersion(mcp.ProtocolVersion20251125)}},
	{"2026-07-28", []client.ClientOption{client.WithProtocolVersion(mcp.ProtocolVersion20260728)}},
}

// Gate is a running mcp-gate process.
type Gate struct {
	Cmd    *exec.Cmd
	Stderr *SyncBuffer
	URL    string // serve mode: the Streamable HTTP endpoint
}

// SyncBuffer is a bytes.Buffer safe for a process to write while a test
// reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// StdioGate starts mcp-gate with args on stdio and returns an initialized
// mcp-go client connected to it, plus the gate's stderr.
func StdioGate(t *testing.T, env []string, args []string, opts ...client.ClientOption) (*client.Client, *SyncBuffer) {
	t.Helper()
	stderr := &SyncBuffer{}
	tr := transport.NewStdioWithOptions(GateBin, env, args, transport.WithCommandStderrWriter(stderr))
	c := client.NewClient(tr, opts...)
	t.Cleanup(func() {
		_ = c.Close()
		if t.Failed() {
			t.Logf("gate stderr:\n%s", stderr)
		}
	})
	Initialize(t, c)
	return c, stderr
}

var listening = regexp.MustCompile(`streamable=(http://\S+)`)

// ServeGate starts `mcp-gate serve --listen 127.0.0.1:0 args...` and waits
// until it listens. Cleanup stops it with SIGTERM.
func ServeGate(t *testing.T, env []string, args ...string) *Gate {
	t.Helper()
	g := &Gate{Stderr: &SyncBuffer{}}
	g.Cmd = exec.Command(GateBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	g.Cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	g.Cmd.Stderr = io.MultiWriter(g.Stderr, pw)
	if err := g.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- g.Cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		_ = g.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = g.Cmd.Process.Kill()
			<-exited
			t.Error("gate did not stop on SIGTERM")
		}
		if t.Failed() {
			t.Logf("gate stderr:\n%s", g.Stderr)
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if m := listening.FindStringSubmatch(sc.Text()); m != nil {
			g.URL = m[1]
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if g.URL == "" {
		t.Fatalf("gate did not start listening:\n%s", g.Stderr)
	}
	return g
}

// Client connects an initialized mcp-go client to the gate's Streamable
// HTTP endpoint.
func (g *Gate) Client(t *testing.T, opts ...client.ClientOption) *client.Client {
	t.Helper()
	return g.ClientWith(t, nil, opts...)
}

// ClientWith is Client with transport options, e.g. continuous listening
// for notifications outside any request.
func (g *Gate) ClientWith(t *testing.T, trOpts []transport.StreamableHTTPCOption, opts ...client.ClientOption) *client.Client {
	t.Helper()
	tr, err := transport.NewStreamableHTTP(g.URL, trOpts...)
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, opts...)
	t.Cleanup(func() { _ = c.Close() })
	Initialize(t, c)
	return c
}

// SSEClient connects an initialized mcp-go client to the gate's legacy SSE
// endpoint.
func (g *Gate) SSEClient(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.NewSSEMCPClient(strings.TrimSuffix(g.URL, "/mcp") + "/sse")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	Initialize(t, c)
	return c
}

// Initialize starts c and performs the handshake of its protocol.
func Initialize(t *testing.T, c *client.Client) {
	t.Helper()
	// A stdio transport ties its process to Start's context: it must live
	// as long as the client.
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "e2e", Version: "1"}
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatal(err)
	}
}

// Call calls a tool and fails the test on a transport or JSON-RPC error.
func Call(t *testing.T, c *client.Client, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := TryCall(context.Background(), c, name, args)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

// TryCall calls a tool.
func TryCall(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(ctx, req)
}

// Text is the text of a result's single text content.
func Text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	var parts []string
	for _, c := range res.Content {
		if tc, ok := mcp.AsTextContent(c); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// Receive waits for a value on ch; the long deadline only keeps a broken
// gate from hanging the test run.
func Receive[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(60 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// Eventually retries f until it succeeds or a generous deadline passes; for
// waiting on restarts, never for asserting how fast something happens.
func Eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	EventuallyWithin(t, what, 60*time.Second, f)
}

// EventuallyWithin is Eventually with its deadline d, for a load that a
// loaded machine takes longer over.
func EventuallyWithin(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Post sends one raw JSON-RPC message to a Streamable HTTP endpoint within
// session sid, as a client that speaks 2025-11-25 would, and returns the
// status and body of the answer.
func Post(ctx context.Context, url, sid, body string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Mcp-Session-Id", sid)
	req.Header.Set("Mcp-Protocol-Version", mcp.ProtocolVersion20251125)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// CancelOverHTTP sends notifications/cancelled for request id (JSON) within
// session sid, giving reason, and fails the test unless it is accepted: 202, or 200 when
// mcp-go uses the POST to deliver notifications queued for a session
// without a listening stream.
func CancelOverHTTP(t *testing.T, url, sid, id, reason string) {
	t.Helper()
	q, _ := json.Marshal(reason)
	status, body, err := Post(context.Background(), url, sid, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":`+id+`,"reason":`+string(q)+`}}`)
	if err != nil || status != http.StatusAccepted && status != http.StatusOK {
		t.Fatalf("notifications/cancelled: %d %s %v", status, body, err)
	}
}
