package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

// asking is an upstream whose "ask" tool sends its client the request its
// method argument names and answers with the client's answer (or the
// error), whose "caps" tool answers with the capabilities its client
// declared, and whose "hold" tool signals holding and waits for release.
type asking struct {
	url          string
	rootsChanged chan struct{}
	holding      chan struct{}
	release      chan struct{}
}

func askingUpstream(t *testing.T) *asking {
	t.Helper()
	a := &asking{rootsChanged: make(chan struct{}, 1), holding: make(chan struct{}, 1), release: make(chan struct{})}
	srv := server.NewMCPServer("asking", "1", server.WithToolCapabilities(true))
	srv.AddTool(mcp.NewTool("hold"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		a.holding <- struct{}{}
		select {
		case <-a.release:
		case <-ctx.Done():
		}
		return mcp.NewToolResultText("released"), nil
	})
	srv.AddTool(mcp.NewTool("ask", mcp.WithString("method", mcp.Required()), mcp.WithString("mode")),
		func(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			var res any
			var err error
			switch req.GetString("method", "") {
			case "sampling":
				r := mcp.CreateMessageRequest{}
				r.Messages = []mcp.SamplingMessage{{Role: mcp.RoleUser, Content: mcp.TextContent{Type: "text", Text: "what is 2+2?"}}}
				r.MaxTokens = 10
				//lint:ignore SA1019 upstreams of the handshake generation still sample
				res, err = srv.RequestSampling(ctx, r)
			case "elicitation":
				r := mcp.ElicitationRequest{}
				r.Params.Mode = req.GetString("mode", "")
				r.Params.Message = "your name?"
				r.Params.RequestedSchema = map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}
				if r.Params.Mode == "url" {
					r.Params.RequestedSchema = nil
					r.Params.URL = "https://example.com/login"
					r.Params.ElicitationID = "e1"
				}
				res, err = srv.RequestElicitation(ctx, r)
			case "roots":
				res, err = srv.RequestRoots(ctx, mcp.ListRootsRequest{})
			}
			if err != nil {
				return mcp.NewToolResultError(err.Error()), nil
			}
			b, _ := json.Marshal(res)
			return mcp.NewToolResultText(string(b)), nil
		})
	srv.AddTool(mcp.NewTool("caps"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		cs, _ := server.ClientSessionFromContext(ctx).(server.SessionWithClientInfo)
		b, _ := json.Marshal(cs.GetClientCapabilities())
		return mcp.NewToolResultText(string(b)), nil
	})
	srv.AddNotificationHandler(string(mcp.MethodNotificationRootsListChanged), func(context.Context, mcp.JSONRPCNotification) {
		select {
		case a.rootsChanged <- struct{}{}:
		default:
		}
	})
	ts := httptest.NewServer(server.NewStreamableHTTPServer(srv))
	t.Cleanup(ts.Close)
	a.url = ts.URL + "/mcp"
	return a
}

// answering is a client that answers every relayed request, and
// remembers that it was asked.
type answering struct{ asked chan string }

func (a answering) CreateMessage(_ context.Context, req mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	a.asked <- "sampling"
	return &mcp.CreateMessageResult{Model: "client-model", SamplingMessage: mcp.SamplingMessage{Role: mcp.RoleAssistant, Content: mcp.TextContent{Type: "text", Text: "four, says the client"}}}, nil
}

func (a answering) Elicit(_ context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	a.asked <- "elicitation " + req.Params.Mode
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"name": "client-user"}}}, nil
}

func (a answering) ListRoots(context.Context, mcp.ListRootsRequest) (*mcp.ListRootsResult, error) {
	a.asked <- "roots"
	return &mcp.ListRootsResult{Roots: []mcp.Root{{URI: "file:///client/root", Name: "client root"}}}, nil
}

var allClientCaps = mcp.ClientCapabilities{
	Sampling:    &mcp.SamplingCapability{},
	Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}},
	Roots: &struct {
		ListChanged bool `json:"listChanged,omitempty"`
	}{ListChanged: true},
}

// relayClient connects a client declaring caps, with a handler for each,
// to p's stdio front (single) or HTTP front.
func relayClient(t *testing.T, p *Proxy, single bool, caps mcp.ClientCapabilities, a answering) *client.Client {
	t.Helper()
	// mcp-go's client declares a capability for each handler it is given.
	opts := []client.ClientOption{client.WithProtocolVersion(mcp.ProtocolVersion20251125)}
	if caps.Sampling != nil {
		opts = append(opts, client.WithSamplingHandler(a))
	}
	if caps.Elicitation != nil {
		opts = append(opts, client.WithElicitationHandler(a))
	}
	if caps.Roots != nil {
		opts = append(opts, client.WithRootsHandler(a))
	}
	var c *client.Client
	if single {
		toProxy, fromClient := io.Pipe()
		toClient, fromProxy := io.Pipe()
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- p.ServeStdio(ctx, toProxy, fromProxy) }()
		c = client.NewClient(transport.NewIO(toClient, fromClient, io.NopCloser(strings.NewReader(""))), opts...)
		t.Cleanup(func() {
			cancel()
			_ = fromClient.Close()
			_ = fromProxy.Close()
			<-served
		})
	} else {
		ts := httptest.NewServer(p.HTTPHandler())
		t.Cleanup(ts.Close)
		//lint:ignore SA1019 the gate's HTTP sessions send their requests on the listening stream
		tr, err := transport.NewStreamableHTTP(ts.URL+StreamablePath, transport.WithContinuousListening())
		if err != nil {
			t.Fatal(err)
		}
		c = client.NewClient(tr, opts...)
		t.Cleanup(func() { _ = c.Close() })
	}
	ctx := context.Background()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = mcp.ProtocolVersion20251125
	req.Params.ClientInfo = mcp.Implementation{Name: "relay-test", Version: "1"}
	req.Params.Capabilities = caps
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRelayRoundTrip(t *testing.T) {
	cases := []struct {
		method, mode string
		asked        string
		answer       string
	}{
		{"sampling", "", "sampling", "four, says the client"},
		{"elicitation", "", "elicitation ", "client-user"},
		{"elicitation", "url", "elicitation url", `"action":"accept"`},
		{"roots", "", "roots", "file:///client/root"},
	}
	for _, front := range []struct {
		name   string
		single bool
	}{{"stdio", true}, {"http", false}} {
		for _, tc := range cases {
			t.Run(front.name+"/"+tc.method+tc.mode, func(t *testing.T) {
				up := askingUpstream(t)
				p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: up.url}}, SingleClient: front.single})
				a := answering{asked: make(chan string, 4)}
				c := relayClient(t, p, front.single, allClientCaps, a)
				res, err := callTool(context.Background(), c, "ask", map[string]any{"method": tc.method, "mode": tc.mode})
				if err != nil {
					t.Fatal(err)
				}
				if got := text(t, res); res.IsError || !strings.Contains(got, tc.answer) {
					t.Fatalf("want the client's answer %q in the result, got %+v", tc.answer, res)
				}
				if got := <-a.asked; got != tc.asked {
					t.Fatalf("the client was asked %q, want %q", got, tc.asked)
				}
			})
		}
	}
}

// TestRelayUndeclared: a request the client did not declare the capability
// for never reaches it; the upstream gets the protocol's error.
func TestRelayUndeclared(t *testing.T) {
	formOnly := mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}}}
	cases := []struct {
		name   string
		caps   mcp.ClientCapabilities
		method string
		mode   string
		want   string
	}{
		{"sampling", mcp.ClientCapabilities{}, "sampling", "", "did not declare the sampling capability"},
		{"roots", mcp.ClientCapabilities{}, "roots", "", "did not declare the roots capability"},
		{"elicitation", mcp.ClientCapabilities{}, "elicitation", "", "did not declare the elicitation capability"},
		{"url mode", formOnly, "elicitation", "url", `does not support elicitation mode "url"`},
	}
	for _, single := range []bool{true, false} {
		for _, tc := range cases {
			t.Run(map[bool]string{true: "stdio/", false: "http/"}[single]+tc.name, func(t *testing.T) {
				up := askingUpstream(t)
				p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: up.url}}, SingleClient: single})
				a := answering{asked: make(chan string, 4)}
				c := relayClient(t, p, single, tc.caps, a)
				res, err := callTool(context.Background(), c, "ask", map[string]any{"method": tc.method, "mode": tc.mode})
				if err != nil {
					t.Fatal(err)
				}
				if got := text(t, res); !res.IsError || !strings.Contains(got, tc.want) {
					t.Fatalf("want an error naming %q, got %+v", tc.want, res)
				}
				select {
				case got := <-a.asked:
					t.Fatalf("the client was asked %q", got)
				default:
				}
			})
		}
	}
}

// TestRelayDeclaredCaps: with a single client the upstream is declared
// that client's capabilities; with shared upstreams every relayed one.
func TestRelayDeclaredCaps(t *testing.T) {
	sampling := mcp.ClientCapabilities{Sampling: &mcp.SamplingCapability{}, Experimental: map[string]any{"x": map[string]any{}}}
	all, _ := json.Marshal(relayableCaps())
	cases := []struct {
		name   string
		single bool
		caps   mcp.ClientCapabilities
		want   string
	}{
		{"single client", true, sampling, `{"sampling":{}}`},
		{"single client without any", true, mcp.ClientCapabilities{}, `{}`},
		{"shared", false, sampling, string(all)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := askingUpstream(t)
			p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: up.url}}, SingleClient: tc.single})
			c := relayClient(t, p, tc.single, tc.caps, answering{asked: make(chan string, 4)})
			res, err := callTool(context.Background(), c, "caps", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := text(t, res); got != tc.want {
				t.Fatalf("upstream saw %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRelayRootsListChanged(t *testing.T) {
	for _, single := range []bool{true, false} {
		up := askingUpstream(t)
		p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: up.url}}, SingleClient: single})
		c := relayClient(t, p, single, allClientCaps, answering{asked: make(chan string, 4)})
		if _, err := c.ListTools(context.Background(), mcp.ListToolsRequest{}); err != nil {
			t.Fatal(err) // the upstream is connected
		}
		if err := c.RootListChanges(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-up.rootsChanged:
		case <-time.After(10 * time.Second):
			t.Fatalf("single=%v: the upstream never got notifications/roots/list_changed", single)
		}
	}
}

// TestRelaySharedNeverGuesses: on the HTTP front, with calls of two
// sessions in flight at one upstream, a request that does not say which
// call it belongs to is refused; the other session is never asked.
func TestRelaySharedNeverGuesses(t *testing.T) {
	up := askingUpstream(t)
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: up.url}}})
	alice := answering{asked: make(chan string, 4)}
	bob := answering{asked: make(chan string, 4)}
	ca := relayClient(t, p, false, allClientCaps, alice)
	cb := relayClient(t, p, false, allClientCaps, bob)
	held := make(chan error, 1)
	go func() { _, err := callTool(context.Background(), cb, "hold", nil); held <- err }()
	<-up.holding
	// mcp-go's upstream sends sampling on its listening stream, which
	// names no call.
	res, err := callTool(context.Background(), ca, "ask", map[string]any{"method": "sampling"})
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); !res.IsError || !strings.Contains(got, "no client session to ask") {
		t.Fatalf("want the request refused, got %+v", res)
	}
	close(up.release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]answering{"alice": alice, "bob": bob} {
		select {
		case got := <-a.asked:
			t.Fatalf("%s was asked %q", name, got)
		default:
		}
	}
}

// TestRelayTarget: the routing rules, and that no rule guesses between
// sessions.
func TestRelayTarget(t *testing.T) {
	cases := []struct {
		name     string
		single   bool
		sessions []string
		inflight []caller // calls in flight at the upstream
		ctx      *caller  // the call the request came with
		want     string   // the chosen session; "" for none
	}{
		{"the call's session", false, []string{"a", "b"}, []caller{{"a", "alice"}, {"b", "bob"}}, &caller{"b", "bob"}, "b"},
		{"the one session calling", false, []string{"a", "b"}, []caller{{"a", "alice"}, {"a", "alice"}}, nil, "a"},
		{"several sessions calling", false, []string{"a", "b"}, []caller{{"a", "alice"}, {"b", "bob"}}, nil, ""},
		{"same session, another principal", false, []string{"a"}, []caller{{"a", "alice"}, {"a", "bob"}}, nil, ""},
		{"nobody calling, shared", false, []string{"a"}, nil, nil, ""},
		{"nobody calling, single client", true, []string{"stdio-1"}, nil, nil, "stdio-1"},
		{"single client gone", true, nil, nil, nil, ""},
		{"the call's session ended", false, []string{"a"}, nil, &caller{"b", "bob"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &Proxy{opts: Options{SingleClient: tc.single}}
			for _, id := range tc.sessions {
				p.sessions.Store(id, &liveSession{ClientSession: &fakeSession{id: id}})
				p.sessionCount.Add(1)
			}
			u := &upstream{}
			for _, k := range tc.inflight {
				defer u.callers.enter(k)()
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = context.WithValue(ctx, callerKey{}, *tc.ctx)
			}
			s, err := p.target(ctx, u)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("want no session, got %s", s.SessionID())
			case tc.want != "" && err != nil:
				t.Fatalf("want %s, got %v", tc.want, err)
			case tc.want != "" && s.SessionID() != tc.want:
				t.Fatalf("want %s, got %s", tc.want, s.SessionID())
			}
		})
	}
}

// TestRelayStdioCancel: a relayed request the upstream gives up on is
// cancelled at the stdio client, and a late answer is dropped.
func TestRelayStdioCancel(t *testing.T) {
	sess := &stdioSession{id: "s", ready: make(chan struct{})}
	sess.markInitialized()
	var out strings.Builder
	sess.w = &lineWriter{w: &out}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(errors.New("the upstream gave up"))
	if _, err := sess.ask(ctx, "roots/list", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("want cancelled, got %v", err)
	}
	want := `{"jsonrpc":"2.0","id":1,"method":"roots/list"}` + "\n" +
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"reason":"the upstream gave up","requestId":1}}` + "\n"
	if out.String() != want {
		t.Fatalf("the client got\n%s\nwant\n%s", out.String(), want)
	}
	sess.answered(head{ID: json.RawMessage(`1`), Result: json.RawMessage(`{}`)}) // dropped, no panic
}

// lines hands each line written to it to a channel.
type lines chan string

func (l lines) Write(b []byte) (int, error) { l <- string(b); return len(b), nil }

// TestStdioSessionElicits: the stdio session answers mcp-go's typed
// elicitation with the client's answer to the request it writes.
func TestStdioSessionElicits(t *testing.T) {
	out := make(lines, 4)
	sess := &stdioSession{id: "s", w: &lineWriter{w: out}, ready: make(chan struct{})}
	go sess.markInitialized() // the client's notifications/initialized, after the question
	type answer struct {
		res *mcp.ElicitationResult
		err error
	}
	got := make(chan answer, 1)
	go func() {
		req := mcp.ElicitationRequest{}
		req.Params.Message = "justification?"
		res, err := sess.RequestElicitation(context.Background(), req)
		got <- answer{res, err}
	}()
	var sent struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			Message string `json:"message"`
		} `json:"params"`
	}
	if err := json.Unmarshal([]byte(<-out), &sent); err != nil || sent.Method != "elicitation/create" || sent.Params.Message != "justification?" {
		t.Fatalf("the client got %+v (%v)", sent, err)
	}
	sess.answered(head{ID: sent.ID, Result: json.RawMessage(`{"action":"accept","content":{"why":"incident 42"}}`)})
	a := <-got
	if a.err != nil {
		t.Fatal(a.err)
	}
	if content, _ := a.res.Content.(map[string]any); a.res.Action != mcp.ElicitationResponseActionAccept || content["why"] != "incident 42" {
		t.Fatalf("got %+v, %v", a.res, a.err)
	}
}

// TestUpstreamRequestBounds: an upstream's request being relayed ends
// when the upstream cancels it; a reused id and one request too many are
// refused at once, without asking anyone.
func TestUpstreamRequestBounds(t *testing.T) {
	type answer struct {
		res json.RawMessage
		err error
	}
	asked := make(chan struct{}, 4)
	u := &upstream{cfg: UpstreamConfig{Name: "up"}, clock: clock.Real{}, timeout: time.Minute, relaying: make(chan struct{}, 2),
		ask: func(ctx context.Context, _ *upstream, _ string, _ json.RawMessage) (json.RawMessage, error) {
			asked <- struct{}{}
			<-ctx.Done()
			return nil, context.Cause(ctx)
		}}
	start := func(id string) <-chan answer {
		got := make(chan answer, 1)
		u.onRequest(context.Background(), json.RawMessage(id), "roots/list", nil, func(res json.RawMessage, err error) { got <- answer{res, err} })
		return got
	}
	code := func(a answer) int {
		var rpc *RPCError
		if !errors.As(a.err, &rpc) {
			return 0
		}
		return rpc.Code
	}

	first := start("1")
	<-asked
	if a := <-start("1"); code(a) != mcp.INVALID_REQUEST {
		t.Fatalf("reused id: got %v", a.err)
	}
	second := start(`"two"`)
	<-asked
	if a := <-start("3"); code(a) != mcp.INTERNAL_ERROR || !strings.Contains(a.err.Error(), "already wait") {
		t.Fatalf("one too many: got %v", a.err)
	}
	u.onNotify(string(mcp.MethodNotificationCancelled), json.RawMessage(`{"requestId":1,"reason":"the tool gave up"}`))
	var ce *CancelledError
	if a := <-first; !errors.As(a.err, &ce) || ce.Reason != "the tool gave up" {
		t.Fatalf("cancelled: got %v", a.err)
	}
	u.onNotify(string(mcp.MethodNotificationCancelled), json.RawMessage(`{"requestId":"two"}`))
	<-second
	third := start("1") // the id of a finished request is free again
	<-asked
	u.onNotify(string(mcp.MethodNotificationCancelled), json.RawMessage(`{"requestId":1}`))
	if a := <-third; !errors.As(a.err, &ce) {
		t.Fatalf("reusing a finished request's id: got %v", a.err)
	}
}
