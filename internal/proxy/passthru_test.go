package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/testupstream"
)

// startServer serves s over Streamable HTTP in-process.
func startServer(t *testing.T, s *server.MCPServer) string {
	t.Helper()
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// rawRequest sends one request through c's transport and returns the raw
// result, as the client received it.
func rawRequest(t *testing.T, c *client.Client, method string, params any) json.RawMessage {
	t.Helper()
	resp, err := c.GetTransport().SendRequest(context.Background(), transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(int64(1 << 30)), Method: method, Params: params,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatalf("%s: %+v", method, resp.Error)
	}
	return resp.Result
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return out.String()
}

func TestToolSchemasPassThroughRaw(t *testing.T) {
	const input = `{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"urn:example:query","title":"Query","description":"A query.","$comment":"kept",` +
		`"type":"object","properties":{"z":{"type":"string","minLength":1},"a":{"$ref":"#/$defs/limit"}},` +
		`"oneOf":[{"required":["z"]},{"required":["a"]}],"anyOf":[{"minProperties":1}],"minProperties":1,"maxProperties":2,` +
		`"$defs":{"limit":{"type":"integer","minimum":0}},"additionalProperties":false}`
	const output = `{"type":"object","properties":{"rows":{"type":"array","items":{"type":"object"}}},"anyOf":[{"required":["rows"]}],"$comment":"out"}`
	const bare = `{"type":"object"}`
	up := server.NewMCPServer("up", "1", server.WithToolCapabilities(false))
	noop := func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	}
	up.AddTool(mcp.NewToolWithRawSchema("query", "Runs a query.", json.RawMessage(input)), noop)
	withOut := mcp.NewToolWithRawSchema("rows", "", json.RawMessage(bare))
	withOut.RawOutputSchema = json.RawMessage(output)
	up.AddTool(withOut, noop)
	url := startServer(t, up)

	wantIn := map[string]string{"query": input, "rows": bare}
	wantOut := map[string]string{"rows": output}
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}})
	for _, front := range []struct {
		name string
		c    func() *client.Client
	}{
		{"stdio", func() *client.Client { return stdioClient(t, p) }},
		{"http", func() *client.Client {
			return httpClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
		}},
	} {
		t.Run(front.name, func(t *testing.T) {
			var res struct {
				Tools []struct {
					Name         string          `json:"name"`
					InputSchema  json.RawMessage `json:"inputSchema"`
					OutputSchema json.RawMessage `json:"outputSchema"`
				} `json:"tools"`
			}
			if err := json.Unmarshal(rawRequest(t, front.c(), "tools/list", nil), &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Tools) != len(wantIn) {
				t.Fatalf("%d tools, want %d", len(res.Tools), len(wantIn))
			}
			for _, tool := range res.Tools {
				if got := compact(t, tool.InputSchema); got != wantIn[tool.Name] {
					t.Errorf("%s inputSchema\n got %s\nwant %s", tool.Name, got, wantIn[tool.Name])
				}
				got := ""
				if len(tool.OutputSchema) > 0 {
					got = compact(t, tool.OutputSchema)
				}
				if got != wantOut[tool.Name] {
					t.Errorf("%s outputSchema\n got %s\nwant %s", tool.Name, got, wantOut[tool.Name])
				}
			}
		})
	}
}

// slowStart serves s over Streamable HTTP, holding its answer to
// initialize until release is called.
func slowStart(t *testing.T, s *server.MCPServer) (url string, release func()) {
	t.Helper()
	h := server.NewStreamableHTTPServer(s)
	released := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(released) }) }
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				Method string `json:"method"`
			}
			if json.Unmarshal(body, &m) == nil && m.Method == string(mcp.MethodInitialize) {
				<-released
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	t.Cleanup(release) // before ts.Close, which waits for the held request
	return ts.URL + "/mcp", release
}

// A prompt, a resource, a templated resource and a completion asked for
// right after initialize, while the upstream still starts, wait for it
// instead of being answered "not found".
func TestRequestsRightAfterInitializeWaitForTheUpstream(t *testing.T) {
	up := testupstream.New(testupstream.Options{Name: "up", Clock: clock.Real{}, Exit: func(int) {}})
	url, release := slowStart(t, up.MCP())
	fc := clock.NewFake(time.Now())
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Clock: fc})
	done := make(chan struct{})
	defer close(done)
	go func() {
		// initialize waits InitWait for capabilities, on the fake clock.
		if fc.BlockUntil(1, done) {
			fc.Advance(DefaultInitWait)
		}
	}()
	c := stdioClient(t, p)

	ctx := context.Background()
	requests := []struct {
		name string
		do   func() (any, error)
		want string
	}{
		{"prompts/get", func() (any, error) {
			req := mcp.GetPromptRequest{}
			req.Params.Name, req.Params.Arguments = "greet", map[string]string{"name": "Ada"}
			return c.GetPrompt(ctx, req)
		}, "Please greet Ada."},
		{"resources/read", func() (any, error) {
			req := mcp.ReadResourceRequest{}
			req.Params.URI = testupstream.HelloURI
			return c.ReadResource(ctx, req)
		}, testupstream.HelloText},
		{"resources/read of a template", func() (any, error) {
			req := mcp.ReadResourceRequest{}
			req.Params.URI = "test://greeting/bob"
			return c.ReadResource(ctx, req)
		}, "hello, bob"},
		{"completion/complete", func() (any, error) {
			req := mcp.CompleteRequest{}
			req.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: "greet"}
			req.Params.Argument = mcp.CompleteArgument{Name: "name", Value: "al"}
			return c.Complete(ctx, req)
		}, `["alice","albert"]`},
	}
	results := make([]string, len(requests))
	var wg sync.WaitGroup
	for i, r := range requests {
		wg.Go(func() {
			res, err := r.do()
			if err != nil {
				results[i] = "error: " + err.Error()
				return
			}
			b, _ := json.Marshal(res)
			results[i] = string(b)
		})
	}
	answered := make(chan struct{})
	go func() { wg.Wait(); close(answered) }()
	// Each request waits (ListWait, on the fake clock) before the upstream
	// is let through.
	waiting := fc.BlockUntil(len(requests), answered)
	release()
	<-answered
	if !waiting {
		t.Error("answered without waiting for the upstream")
	}
	for i, r := range requests {
		if got := results[i]; strings.HasPrefix(got, "error") || !strings.Contains(got, r.want) {
			t.Errorf("%s: %s, want it to contain %s", r.name, got, r.want)
		}
	}
}

// initialize combines the upstreams' instructions, each under its
// upstream's name, waiting for an upstream still starting within InitWait;
// past it, the instructions of those started are given.
func TestInitializeCombinesInstructions(t *testing.T) {
	withInstructions := func(text string) *server.MCPServer {
		return server.NewMCPServer("up", "1", server.WithToolCapabilities(false), server.WithInstructions(text))
	}
	tests := []struct {
		name      string
		upstreams []string // instructions; the last upstream starts slowly
		late      bool     // the slow one starts only after InitWait
		want      string
	}{
		{"one upstream", []string{"Use query for reads."}, false, "Use query for reads."},
		{"several, prefixed", []string{"Use query for reads.", "", "Deploys are slow."}, false, "u0: Use query for reads.\n\nu2: Deploys are slow."},
		{"past the budget", []string{"Use query for reads.", "Deploys are slow."}, true, "u0: Use query for reads."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ups []UpstreamConfig
			var release func()
			for i, text := range tt.upstreams {
				cfg := UpstreamConfig{Name: "u" + string(rune('0'+i))}
				if i == len(tt.upstreams)-1 {
					cfg.URL, release = slowStart(t, withInstructions(text))
				} else {
					cfg.URL = startServer(t, withInstructions(text))
				}
				ups = append(ups, cfg)
			}
			start := time.Now()
			fc := clock.NewFake(start)
			p := newProxy(t, Options{Upstreams: ups, Clock: fc})
			done := make(chan struct{})
			defer close(done)
			ts := httptest.NewServer(p.HTTPHandler())
			t.Cleanup(ts.Close)
			tr, err := transport.NewStreamableHTTP(ts.URL + StreamablePath)
			if err != nil {
				t.Fatal(err)
			}
			c := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
			t.Cleanup(func() { _ = c.Close() })
			if err := c.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			go func() {
				// initialize waits InitWait on the fake clock: the slow
				// upstream starts within it, or only after it. The
				// upstreams' own requests wait on the same clock (their
				// timeouts), so the late case waits for initialize's wait
				// itself, due InitWait from the start.
				if !tt.late {
					if fc.BlockUntil(1, done) {
						release()
					}
					return
				}
				if !fc.BlockUntilDue(start.Add(DefaultInitWait), done) {
					return
				}
				for _, u := range p.ups[:len(p.ups)-1] {
					<-u.ready
				}
				fc.Advance(DefaultInitWait)
				release()
			}()
			req := mcp.InitializeRequest{}
			req.Params.ProtocolVersion = mcp.ProtocolVersion20251125
			res, err := c.Initialize(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if res.Instructions != tt.want {
				t.Errorf("instructions %q, want %q", res.Instructions, tt.want)
			}
		})
	}
}

// An upstream that refuses the gate (401) or cannot be reached makes the
// lists an error naming it and why, not an empty list.
func TestListsNameTheUpstreamThatIsDown(t *testing.T) {
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="up"`)
		http.Error(w, "no token", http.StatusUnauthorized)
	}))
	t.Cleanup(unauthorized.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	tests := []struct {
		name, url string
		want      []string
	}{
		{"401", unauthorized.URL + "/mcp", []string{"upstream db", "401"}},
		{"unreachable", gone.URL + "/mcp", []string{"upstream db", "connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "db", URL: tt.url}}, MaxBackoff: time.Hour, MinBackoff: time.Hour})
			c := stdioClient(t, p)
			_, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
			if err == nil {
				t.Fatal("tools/list succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
