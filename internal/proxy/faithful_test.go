package proxy

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// answerOf is the raw result or error object of one request.
func answerOf(t *testing.T, c *client.Client, method string, params any) string {
	t.Helper()
	resp, err := c.GetTransport().SendRequest(context.Background(), transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(int64(1 << 30)), Method: method, Params: params,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		b, _ := json.Marshal(resp.Error)
		return string(b)
	}
	return compact(t, resp.Result)
}

// A tool no upstream lists is asked of the upstream its name points to,
// through the middleware, so the client gets that upstream's own answer;
// a name that points nowhere gets the gate's.
func TestUnknownToolAnsweredAsTheUpstreamWould(t *testing.T) {
	url, rec := startUpstream(t, "up")
	tr, err := transport.NewStreamableHTTP(url)
	if err != nil {
		t.Fatal(err)
	}
	direct := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
	t.Cleanup(func() { _ = direct.Close() })
	initClient(t, direct)
	var mu sync.Mutex
	var decided []string
	mw := func(next CallFunc) CallFunc {
		return func(ctx context.Context, c *Call) (Result, error) {
			mu.Lock()
			decided = append(decided, c.Tool+">"+c.Upstream+":"+c.UpstreamTool)
			mu.Unlock()
			return next(ctx, c)
		}
	}
	single := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: mw})
	url2, _ := startUpstream(t, "other")
	several := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}, {Name: "other", URL: url2}}, Middleware: mw})

	call := func(name string) map[string]any { return map[string]any{"name": name, "arguments": map[string]any{}} }
	want := answerOf(t, direct, "tools/call", call("nosuch"))
	for _, tc := range []struct {
		name string
		c    *client.Client
		tool string
		want string
	}{
		{"stdio", stdioClient(t, single, client.WithProtocolVersion(mcp.ProtocolVersion20251125)), "nosuch", want},
		{"http", httpClient(t, single, client.WithProtocolVersion(mcp.ProtocolVersion20251125)), "nosuch", want},
		{"several, prefixed", stdioClient(t, several, client.WithProtocolVersion(mcp.ProtocolVersion20251125)), "up__nosuch", want},
		{"several, no such upstream", stdioClient(t, several, client.WithProtocolVersion(mcp.ProtocolVersion20251125)), "zz__nosuch", `{"code":-32602,"message":"tool 'zz__nosuch' not found"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := answerOf(t, tc.c, "tools/call", call(tc.tool)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	if !rec.seen("nosuch") {
		t.Fatal("the upstream was never asked")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(decided) != 3 || decided[2] != "up__nosuch>up:nosuch" {
		t.Fatalf("middleware saw %q, want every call that reaches an upstream", decided)
	}
}
