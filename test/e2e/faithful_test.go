package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// rawAnswer sends one request through c's transport and returns the result
// or the error object, compacted, exactly as the client received it.
func rawAnswer(t *testing.T, c *client.Client, method string, params any) string {
	t.Helper()
	resp, err := c.GetTransport().SendRequest(context.Background(), transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(int64(1 << 30)), Method: method, Params: params,
	})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	raw := resp.Result
	if resp.Error != nil {
		raw, _ = json.Marshal(resp.Error)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("%s: %s is not JSON", method, raw)
	}
	return b.String()
}

// TestSmallThingsAsDirect: side by side with server-everything, an unknown
// tool (a tool result with isError) and a completion with hasMore: false
// are answered through the gate, on both fronts, as they are directly.
func TestSmallThingsAsDirect(t *testing.T) {
	direct, err := client.NewStdioMCPClient(Everything(t)[0], nil, Everything(t)[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close() })
	Initialize(t, direct)
	stdio, _ := StdioGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...), Protocols[0].Opts...)
	http := ServeGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...)...).Client(t, Protocols[0].Opts...)
	tests := []struct {
		name, method string
		params       any
	}{
		{"unknown tool", "tools/call", map[string]any{"name": "no-such-tool", "arguments": map[string]any{}}},
		{"completion", "completion/complete", map[string]any{
			"ref":      map[string]any{"type": "ref/prompt", "name": "completable-prompt"},
			"argument": map[string]any{"name": "department", "value": "E"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := rawAnswer(t, direct, tc.method, tc.params)
			for front, gate := range map[string]*client.Client{"stdio": stdio, "http": http} {
				if got := rawAnswer(t, gate, tc.method, tc.params); got != want {
					t.Errorf("through the gate's %s front\n got %s\nwant %s (directly)", front, got, want)
				}
			}
		})
	}
}
