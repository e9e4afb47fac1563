package main

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/testupstream"
)

func inProcessSessions(t *testing.T, srv *server.MCPServer, n int) []*client.Client {
	t.Helper()
	var out []*client.Client
	for range n {
		cli, err := client.NewInProcessClient(srv)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		if err := cli.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := initialize(t.Context(), cli, legacy); err != nil {
			t.Fatal(err)
		}
		out = append(out, cli)
	}
	return out
}

func TestCallsRecordsEveryCall(t *testing.T) {
	up := testupstream.New(testupstream.Options{Clock: clock.Real{}})
	lat, err := calls(t.Context(), inProcessSessions(t, up.MCP(), 3), 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 50 {
		t.Fatalf("got %d latencies, want 50", len(lat))
	}
	for i, d := range lat {
		if d <= 0 {
			t.Fatalf("call %d has no latency recorded", i)
		}
	}
}

func TestCallsFailsOnAWrongEcho(t *testing.T) {
	srv := server.NewMCPServer("liar", "1")
	srv.AddTool(mcp.NewTool("echo"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("something else"), nil
	})
	if _, err := calls(t.Context(), inProcessSessions(t, srv, 2), 10); err == nil || !strings.Contains(err.Error(), "echo returned") {
		t.Fatalf("calls = %v, want a wrong-echo error", err)
	}
}

func TestStartAnnounced(t *testing.T) {
	e := &env{logs: io.Discard}
	tests := []struct {
		name    string
		script  string
		wantURL string
		wantErr string
	}{
		{"announces", `echo starting >&2; echo "listening on http://127.0.0.1:9/mcp" >&2; sleep 30`, "http://127.0.0.1:9/mcp", ""},
		{"exits silently", `exit 0`, "", "exited without saying where it listens"},
	}
	for _, tt := range tests {
		cmd, url, err := startAnnounced(t.Context(), e, upstreamAnnounce, nil, "/bin/sh", "-c", tt.script)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if url != tt.wantURL {
			t.Errorf("%s: url = %q, want %q", tt.name, url, tt.wantURL)
		}
		stopProcess(cmd)
		if cmd.ProcessState == nil || cmd.ProcessState.Success() {
			t.Errorf("%s: process not stopped by signal: %v", tt.name, cmd.ProcessState)
		}
	}
}

// TestPassthroughRelaysCalls: the peer serves the upstream's tools and
// relays their calls, here over stdio in front of an HTTP upstream, for
// clients of either protocol generation (it speaks 2025-11-25 upstream).
func TestPassthroughRelaysCalls(t *testing.T) {
	for _, protocol := range []string{legacy, modern} {
		t.Run(protocol, func(t *testing.T) { testPassthroughRelaysCalls(t, protocol) })
	}
}

func testPassthroughRelaysCalls(t *testing.T, protocol string) {
	up := testupstream.New(testupstream.Options{Clock: clock.Real{}})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(up.MCP()))
	t.Cleanup(ts.Close)

	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{passthroughCommand, "--upstream", ts.URL + "/mcp"}, inR, outW, io.Discard)
		outW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		if err := <-served; err != nil {
			t.Errorf("passthrough: %v", err)
		}
	})
	cli := client.NewClient(transport.NewIO(outR, inW, io.NopCloser(strings.NewReader(""))))
	if err := cli.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := initialize(t.Context(), cli, protocol); err != nil {
		t.Fatal(err)
	}
	if _, err := calls(t.Context(), []*client.Client{cli}, 5); err != nil {
		t.Fatalf("calls through the pass-through: %v", err)
	}
}
