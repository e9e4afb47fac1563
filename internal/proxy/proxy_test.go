package proxy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
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

// recorder remembers the tools/call names an upstream received.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(body))
			var m struct {
				Method string `json:"method"`
				Params struct {
					Name string `json:"name"`
				} `json:"params"`
			}
			if json.Unmarshal(body, &m) == nil && m.Method == "tools/call" {
				r.mu.Lock()
				r.calls = append(r.calls, m.Params.Name)
				r.mu.Unlock()
			}
		}
		next.ServeHTTP(w, req)
	})
}

func (r *recorder) seen(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.calls, name)
}

// startUpstream serves the test upstream over Streamable HTTP in-process.
func startUpstream(t *testing.T, name string) (string, *recorder) {
	t.Helper()
	up := testupstream.New(testupstream.Options{Name: name, Clock: clock.Real{}, Exit: func(int) {}})
	rec := &recorder{}
	ts := httptest.NewServer(rec.wrap(server.NewStreamableHTTPServer(up.MCP())))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp", rec
}

func newProxy(t *testing.T, opts Options) *Proxy {
	t.Helper()
	p, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// stdioClient connects an mcp-go client to p's stdio front over pipes.
func stdioClient(t testing.TB, p *Proxy, opts ...client.ClientOption) *client.Client {
	t.Helper()
	toProxy, fromClient := io.Pipe()
	toClient, fromProxy := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.ServeStdio(ctx, toProxy, fromProxy) }()
	c := client.NewClient(transport.NewIO(toClient, fromClient, io.NopCloser(strings.NewReader(""))), opts...)
	t.Cleanup(func() {
		cancel()
		_ = fromClient.Close()
		_ = fromProxy.Close()
		if err := <-served; err != nil {
			t.Errorf("ServeStdio: %v", err)
		}
	})
	initClient(t, c)
	return c
}

func httpClient(t *testing.T, p *Proxy, opts ...client.ClientOption) *client.Client {
	t.Helper()
	ts := httptest.NewServer(p.HTTPHandler())
	t.Cleanup(ts.Close)
	tr, err := transport.NewStreamableHTTP(ts.URL + StreamablePath)
	if err != nil {
		t.Fatal(err)
	}
	c := client.NewClient(tr, opts...)
	t.Cleanup(func() { _ = c.Close() })
	initClient(t, c)
	return c
}

func initClient(t testing.TB, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "proxy-test", Version: "1"}
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatal(err)
	}
}

func callTool(ctx context.Context, c *client.Client, name string, args map[string]any) (*mcp.CallToolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	return c.CallTool(ctx, req)
}

func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("want one content, got %+v", res.Content)
	}
	tc, ok := mcp.AsTextContent(res.Content[0])
	if !ok {
		t.Fatalf("want text content, got %+v", res.Content[0])
	}
	return tc.Text
}

type front struct {
	name    string
	connect func(*testing.T, *Proxy, ...client.ClientOption) *client.Client
}

var fronts = []front{
	{"stdio", func(t *testing.T, p *Proxy, opts ...client.ClientOption) *client.Client {
		return stdioClient(t, p, opts...)
	}},
	{"http", httpClient},
}

var protocols = []struct {
	name string
	opts []client.ClientOption
}{
	{"2025-11-25", []client.ClientOption{client.WithProtocolVersion(mcp.ProtocolVersion20251125)}},
	{"2026-07-28", nil},
}

func TestMiddlewareRefusesWithoutForwarding(t *testing.T) {
	for _, f := range fronts {
		for _, pv := range protocols {
			t.Run(f.name+"/"+pv.name, func(t *testing.T) {
				url, rec := startUpstream(t, "up")
				var seen []Call
				var mu sync.Mutex
				refuse := func(next CallFunc) CallFunc {
					return func(ctx context.Context, c *Call) (Result, error) {
						mu.Lock()
						seen = append(seen, *c)
						mu.Unlock()
						if c.Tool == "echo" {
							return ToolErrorResult("refused by test rule at policy.yaml:3"), nil
						}
						return next(ctx, c)
					}
				}
				p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: refuse})
				c := f.connect(t, p, pv.opts...)
				ctx := context.Background()

				res, err := callTool(ctx, c, "echo", map[string]any{"text": "secret"})
				if err != nil {
					t.Fatal(err)
				}
				if !res.IsError || text(t, res) != "refused by test rule at policy.yaml:3" {
					t.Fatalf("want the refusal, got %+v", res)
				}
				res, err = callTool(ctx, c, "whoami", nil)
				if err != nil || text(t, res) != "up" {
					t.Fatalf("whoami: %v %+v", err, res)
				}
				if rec.seen("echo") {
					t.Error("a refused call reached the upstream")
				}
				if !rec.seen("whoami") {
					t.Error("an allowed call did not reach the upstream")
				}
				mu.Lock()
				defer mu.Unlock()
				if len(seen) != 2 || seen[0].Upstream != "up" || seen[0].UpstreamTool != "echo" ||
					string(seen[0].Arguments) != `{"text":"secret"}` || seen[0].Client.Name != "proxy-test" {
					t.Errorf("middleware saw %+v", seen)
				}
				// Protocol version 2026-07-28 has no sessions.
				if pv.opts != nil && seen[0].SessionID == "" {
					t.Error("no session id")
				}
			})
		}
	}
}

func TestMiddlewareContextCancelledWithClient(t *testing.T) {
	for _, f := range fronts {
		for _, pv := range protocols {
			t.Run(f.name+"/"+pv.name, func(t *testing.T) {
				url, rec := startUpstream(t, "up")
				entered := make(chan struct{})
				cancelled := make(chan error, 1)
				hold := func(next CallFunc) CallFunc {
					return func(ctx context.Context, c *Call) (Result, error) {
						close(entered)
						<-ctx.Done()
						cancelled <- ctx.Err()
						return nil, ctx.Err()
					}
				}
				p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: hold})
				c := f.connect(t, p, pv.opts...)

				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() {
					_, err := callTool(ctx, c, "sleep", map[string]any{"ms": 60000})
					done <- err
				}()
				<-entered
				cancel()
				if err := <-cancelled; !errors.Is(err, context.Canceled) {
					t.Fatalf("middleware ctx ended with %v", err)
				}
				if err := <-done; err == nil {
					t.Fatal("the cancelled call succeeded")
				}
				if rec.seen("sleep") {
					t.Error("a held call reached the upstream")
				}
			})
		}
	}
}

func TestProgressForMiddleware(t *testing.T) {
	url, _ := startUpstream(t, "up")
	report := func(next CallFunc) CallFunc {
		return func(ctx context.Context, c *Call) (Result, error) {
			if c.Progress == nil {
				return ToolErrorResult("no progress token"), nil
			}
			c.Progress(ctx, 1, "waiting for approval")
			return next(ctx, c)
		}
	}
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: report})
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			c := f.connect(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
			var mu sync.Mutex
			var got []string
			c.OnNotification(func(n mcp.JSONRPCNotification) {
				if n.Method == "notifications/progress" {
					mu.Lock()
					got = append(got, n.Params.AdditionalFields["message"].(string))
					mu.Unlock()
				}
			})
			req := mcp.CallToolRequest{}
			req.Params.Name = "echo"
			req.Params.Arguments = map[string]any{"text": "x"}
			req.Params.Meta = &mcp.Meta{ProgressToken: "tok"}
			res, err := c.CallTool(context.Background(), req)
			if err != nil || text(t, res) != "x" {
				t.Fatalf("%v %+v", err, res)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(got, []string{"waiting for approval"}) {
				t.Errorf("progress: %q", got)
			}
		})
	}
}

func TestToolFilterAndNotify(t *testing.T) {
	url, _ := startUpstream(t, "up")
	var mu sync.Mutex
	hidden := "fail"
	filter := func(tool *mcp.Tool) bool {
		mu.Lock()
		defer mu.Unlock()
		if tool.Name == "echo" {
			tool.Description += " (needs role Reader)"
		}
		return tool.Name != hidden
	}
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, ToolFilter: filter})
	c := stdioClient(t, p)
	changed := make(chan struct{}, 10)
	c.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationToolsListChanged) {
			changed <- struct{}{}
		}
	})
	names := func() map[string]string {
		res, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, tool := range res.Tools {
			m[tool.Name] = tool.Description
		}
		return m
	}
	tools := names()
	if _, ok := tools["fail"]; ok {
		t.Error("filtered tool listed")
	}
	if !strings.HasSuffix(tools["echo"], " (needs role Reader)") {
		t.Errorf("echo description %q", tools["echo"])
	}

	mu.Lock()
	hidden = "whoami"
	mu.Unlock()
	p.NotifyToolsChanged()
	<-changed
	tools = names()
	if _, ok := tools["whoami"]; ok {
		t.Error("whoami still listed after NotifyToolsChanged")
	}
	if _, ok := tools["fail"]; !ok {
		t.Error("fail not listed after NotifyToolsChanged")
	}
}

func TestCallParams(t *testing.T) {
	tests := []struct {
		name      string
		args      string
		meta      string
		withToken bool
		task      bool
		want      string
	}{
		{"bare", "", "", false, false, `{"name":"t"}`},
		{"arguments kept byte for byte", `{"b": 1, "a":[2]}`, "", false, false, `{"name":"t","arguments":{"b": 1, "a":[2]}}`},
		{"token replaced", `{}`, `{"progressToken":"client","trace":"x"}`, true, false, `{"name":"t","arguments":{},"_meta":{"progressToken":1099511627777,"trace":"x"}}`},
		{"per-request protocol keys dropped", "", `{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{}}`, false, false, `{"name":"t","_meta":{}}`},
		{"task requested", `{}`, "", false, true, `{"name":"t","arguments":{},"task":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := callParams("t", json.RawMessage(tt.args), json.RawMessage(tt.meta), idBase+1, tt.withToken, tt.task)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestToolErrorResult(t *testing.T) {
	var res mcp.CallToolResult
	if err := json.Unmarshal(ToolErrorResult("denied by \"rule\" <x>\n"), &res); err != nil {
		t.Fatal(err)
	}
	if !res.IsError || text(t, &res) != "denied by \"rule\" <x>\n" {
		t.Errorf("%+v", res)
	}
}

func TestOriginGuard(t *testing.T) {
	h := originGuard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	tests := []struct {
		origin string
		want   int
	}{
		{"", http.StatusOK},
		{"http://localhost:3000", http.StatusOK},
		{"http://127.0.0.1:8080", http.StatusOK},
		{"http://[::1]:8080", http.StatusOK},
		{"https://evil.example", http.StatusForbidden},
		{"http://localhost.evil.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tt.want {
			t.Errorf("Origin %q: status %d, want %d", tt.origin, w.Code, tt.want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		ups  []UpstreamConfig
	}{
		{"none", nil},
		{"unnamed", []UpstreamConfig{{Command: []string{"x"}}}},
		{"both", []UpstreamConfig{{Name: "a", Command: []string{"x"}, URL: "http://x"}}},
		{"neither", []UpstreamConfig{{Name: "a"}}},
		{"duplicate", []UpstreamConfig{{Name: "a", URL: "http://x"}, {Name: "a", URL: "http://y"}}},
		{"separator in name", []UpstreamConfig{{Name: "a__b", URL: "http://x"}, {Name: "c", URL: "http://y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := New(context.Background(), Options{Upstreams: tt.ups, ListWait: time.Second}); err == nil {
				_ = p.Close()
				t.Error("accepted")
			}
		})
	}
}

func TestDecorate(t *testing.T) {
	p := &Proxy{serverInfo: json.RawMessage(`{"name":"mcp-gate","version":"v"}`)}
	tests := []struct{ name, in, want string }{
		{"plain", `{"content":[]}`, `{"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"mcp-gate","version":"v"}},"content":[]}`},
		{"empty", `{}`, `{"resultType":"complete","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"mcp-gate","version":"v"}}}`},
		{"own meta kept", `{"_meta":{"k":1},"content":[]}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"mcp-gate","version":"v"},"k":1},"content":[],"resultType":"complete"}`},
		{"own result type kept", `{"resultType":"input_required"}`, `{"_meta":{"io.modelcontextprotocol/serverInfo":{"name":"mcp-gate","version":"v"}},"resultType":"input_required"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := p.decorate(json.RawMessage(tt.in))
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Error("invalid JSON")
			}
		})
	}
}

// TestCallTimeout: a call its upstream does not answer within the
// upstream's timeout (default 5m) is answered with an error naming the
// upstream and the limit, and cancelled at the upstream.
func TestCallTimeout(t *testing.T) {
	for _, tt := range []struct {
		name    string
		timeout time.Duration
		want    string
	}{
		{"default", 0, "within 5m0s"},
		{"configured", 90 * time.Second, "within 1m30s"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			started, cancelled := make(chan struct{}, 1), make(chan struct{}, 1)
			up := testupstream.New(testupstream.Options{Name: "up", Clock: clock.Real{}, Exit: func(int) {}, Stderr: lineFunc(func(line string) {
				switch {
				case strings.HasPrefix(line, "started sleep"):
					started <- struct{}{}
				case strings.HasPrefix(line, "cancelled sleep"):
					cancelled <- struct{}{}
				}
			})})
			ts := httptest.NewServer(server.NewStreamableHTTPServer(up.MCP()))
			t.Cleanup(ts.Close)
			url := ts.URL + "/mcp"
			fake := clock.NewFake(time.Now())
			p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url, Timeout: tt.timeout}}, Clock: fake})
			c := stdioClient(t, p)
			ctx := context.Background()
			if _, err := c.ListTools(ctx, mcp.ListToolsRequest{}); err != nil {
				t.Fatal(err)
			}
			limit := cmp.Or(tt.timeout, DefaultCallTimeout)
			before := fake.Waiters()
			done := make(chan error, 1)
			go func() {
				_, err := callTool(ctx, c, "sleep", map[string]any{"ms": 3.6e6})
				done <- err
			}()
			if !fake.BlockUntil(before+1, t.Context().Done()) {
				t.Fatal("the call set no timeout")
			}
			<-started
			fake.Advance(limit - time.Millisecond)
			select {
			case err := <-done:
				t.Fatalf("the call ended before its timeout: %v", err)
			default:
			}
			fake.Advance(time.Millisecond)
			err := <-done
			if err == nil || !strings.Contains(err.Error(), "upstream up did not answer "+tt.want) || !strings.Contains(err.Error(), "upstreams.up.timeout") {
				t.Fatalf("call past the timeout: %v, want an error naming upstream up and %s", err, tt.want)
			}
			select {
			case <-cancelled:
			case <-time.After(30 * time.Second):
				t.Fatal("the upstream saw no cancellation")
			}
		})
	}
}

// lineFunc is a writer that hands each write, a line, to a function.
type lineFunc func(line string)

func (f lineFunc) Write(b []byte) (int, error) {
	f(string(b))
	return len(b), nil
}

// TestCallTimeoutStartsAtForward: time a middleware holds the call (the gate
// waiting for approval) does not count against the upstream's timeout.
func TestCallTimeoutStartsAtForward(t *testing.T) {
	url, _ := startUpstream(t, "up")
	fake := clock.NewFake(time.Now())
	held, release := make(chan struct{}), make(chan struct{})
	hold := func(next CallFunc) CallFunc {
		return func(ctx context.Context, c *Call) (Result, error) {
			if c.Tool == "echo" {
				close(held)
				<-release
			}
			return next(ctx, c)
		}
	}
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url, Timeout: time.Minute}}, Clock: fake, Middleware: hold})
	c := stdioClient(t, p)
	type answer struct {
		res *mcp.CallToolResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := callTool(context.Background(), c, "echo", map[string]any{"text": "late"})
		done <- answer{res, err}
	}()
	<-held
	fake.Advance(time.Hour)
	close(release)
	if a := <-done; a.err != nil || text(t, a.res) != "late" {
		t.Fatalf("a call held an hour before it was forwarded: %v %+v", a.err, a.res)
	}
}

// TestCancelledCallIsNeverForwarded: a middleware that forwards a call the
// client has cancelled meanwhile (an approval landing with the cancel)
// reaches no upstream.
func TestCancelledCallIsNeverForwarded(t *testing.T) {
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			url, rec := startUpstream(t, "up")
			entered := make(chan struct{})
			forwarded := make(chan error, 1)
			late := func(next CallFunc) CallFunc {
				return func(ctx context.Context, c *Call) (Result, error) {
					if c.Tool != "echo" {
						return next(ctx, c)
					}
					close(entered)
					<-ctx.Done()
					_, err := next(ctx, c)
					forwarded <- err
					return nil, err
				}
			}
			p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: late})
			c := f.connect(t, p)
			ctx, cancel := context.WithCancel(context.Background())
			go func() { _, _ = callTool(ctx, c, "echo", map[string]any{"text": "x"}) }()
			<-entered
			cancel()
			if err := <-forwarded; !errors.Is(err, context.Canceled) {
				t.Fatalf("forwarding a cancelled call: %v, want context.Canceled", err)
			}
			if rec.seen("echo") {
				t.Error("a cancelled call reached the upstream")
			}
		})
	}
}
