package testupstream

import (
	"bufio"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

// harness runs a Server on stdio pipes and drives it with mcp-go's client,
// so the test covers the same JSON-RPC path a proxy uses.
type harness struct {
	srv    *Server
	cli    *client.Client
	clock  *clock.Fake
	stderr chan string // lines the server wrote to stderr
	exits  chan int    // codes passed to Exit by the crash tool

	mu    sync.Mutex
	notes []mcp.JSONRPCNotification
	noted chan struct{} // receives once per notification
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{
		clock:  clock.NewFake(time.Unix(0, 0)),
		stderr: make(chan string, 16),
		exits:  make(chan int, 1),
		noted:  make(chan struct{}, 64),
	}
	errR, errW := io.Pipe()
	go func() {
		sc := bufio.NewScanner(errR)
		for sc.Scan() {
			h.stderr <- sc.Text()
		}
	}()
	h.srv = New(Options{Name: "alpha", Stderr: errW, Exit: func(code int) { h.exits <- code }, Clock: h.clock})

	toServerR, toServerW := io.Pipe()
	fromServerR, fromServerW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- h.srv.ServeStdio(ctx, toServerR, fromServerW) }()

	h.cli = client.NewClient(transport.NewIO(fromServerR, toServerW, io.NopCloser(strings.NewReader(""))))
	h.cli.OnNotification(func(n mcp.JSONRPCNotification) {
		h.mu.Lock()
		h.notes = append(h.notes, n)
		h.mu.Unlock()
		h.noted <- struct{}{}
	})
	t.Cleanup(func() {
		h.cli.Close()
		cancel()
		toServerW.Close()
		if err := <-served; err != nil {
			t.Errorf("ServeStdio: %v", err)
		}
		errW.Close()
	})
	if err := h.cli.Start(ctx); err != nil {
		t.Fatalf("start client: %v", err)
	}
	if _, err := h.cli.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
		t.Fatalf("initialize: %v", err)
	}
	return h
}

func (h *harness) call(t *testing.T, ctx context.Context, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := h.cli.CallTool(ctx, req)
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

// waitNotes blocks until n notifications with method have arrived and
// returns every notification with that method so far.
func (h *harness) waitNotes(t *testing.T, method string, n int) []mcp.JSONRPCNotification {
	t.Helper()
	for {
		h.mu.Lock()
		var got []mcp.JSONRPCNotification
		for _, n := range h.notes {
			if n.Method == method {
				got = append(got, n)
			}
		}
		h.mu.Unlock()
		if len(got) >= n {
			return got
		}
		<-h.noted
	}
}

func text(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if len(res.Content) != 1 {
		t.Fatalf("want one content item, got %d", len(res.Content))
	}
	tc, ok := mcp.AsTextContent(res.Content[0])
	if !ok {
		t.Fatalf("want text content, got %T", res.Content[0])
	}
	return tc.Text
}

func TestTools(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	tests := []struct {
		tool    string
		args    map[string]any
		want    string
		wantErr bool
	}{
		{"echo", map[string]any{"text": "hi there"}, "hi there", false},
		{"echo", map[string]any{}, `required argument "text" not found`, true},
		{"whoami", nil, "alpha", false},
		{"fail", map[string]any{"message": "boom"}, "boom", true},
		{"sleep", map[string]any{"ms": 0}, "slept 0 ms", false},
		{"cancellations", nil, "0", false},
		{"remove_tool", map[string]any{"name": "nope"}, "no tool nope", true},
	}
	for _, tt := range tests {
		res := h.call(t, ctx, tt.tool, tt.args)
		if got := text(t, res); got != tt.want || res.IsError != tt.wantErr {
			t.Errorf("%s(%v) = %q isError=%v, want %q isError=%v", tt.tool, tt.args, got, res.IsError, tt.want, tt.wantErr)
		}
	}
}

func TestToolsCarryAnnotations(t *testing.T) {
	h := newHarness(t)
	res, err := h.cli.ListTools(t.Context(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]mcp.Tool{}
	for _, tool := range res.Tools {
		byName[tool.Name] = tool
	}
	for _, name := range []string{"echo", "sleep", "cancellations", "progress", "fail", "crash", "add_tool", "remove_tool", "whoami", "log"} {
		tool, ok := byName[name]
		if !ok {
			t.Errorf("tool %s not listed", name)
			continue
		}
		if tool.Annotations.ReadOnlyHint == nil || tool.Annotations.Title == "" {
			t.Errorf("tool %s lacks annotations: %+v", name, tool.Annotations)
		}
	}
	if d := byName["crash"].Annotations.DestructiveHint; d == nil || !*d {
		t.Errorf("crash should be marked destructive")
	}
}

func TestSleepCancelledIsCounted(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		req := mcp.CallToolRequest{}
		req.Params.Name = "sleep"
		req.Params.Arguments = map[string]any{"ms": 60000, "marker": "m1"}
		_, err := h.cli.CallTool(ctx, req)
		done <- err
	}()
	if !h.clock.BlockUntil(1, t.Context().Done()) {
		t.Fatal("sleep never started waiting")
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("cancelled call returned no error")
	}
	if line := <-h.stderr; line != "started sleep m1" {
		t.Fatalf("stderr = %q, want %q", line, "started sleep m1")
	}
	if line := <-h.stderr; line != "cancelled sleep m1" {
		t.Fatalf("stderr = %q, want %q", line, "cancelled sleep m1")
	}
	if got := text(t, h.call(t, t.Context(), "cancellations", nil)); got != "1" {
		t.Errorf("cancellations = %s, want 1", got)
	}
}

func TestProgressUsesRequestToken(t *testing.T) {
	h := newHarness(t)
	req := mcp.CallToolRequest{}
	req.Params.Name = "progress"
	req.Params.Arguments = map[string]any{"steps": 3}
	req.Params.Meta = &mcp.Meta{ProgressToken: "tok-7"}
	res, err := h.cli.CallTool(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, res); got != "done 3 steps" {
		t.Errorf("result = %q", got)
	}
	notes := h.waitNotes(t, string(mcp.MethodNotificationProgress), 3)
	for i, n := range notes {
		f := n.Params.AdditionalFields
		if f["progressToken"] != "tok-7" || f["progress"] != float64(i+1) || f["total"] != float64(3) {
			t.Errorf("progress %d = %v", i, f)
		}
	}
}

func TestCrashExits(t *testing.T) {
	h := newHarness(t)
	res := h.call(t, t.Context(), "crash", nil)
	if code := <-h.exits; code != CrashExitCode {
		t.Errorf("exit code %d, want %d", code, CrashExitCode)
	}
	if !res.IsError {
		t.Errorf("crash returned without error after a returning Exit")
	}
}

func TestToolListChanges(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	listed := func() []string {
		res, err := h.cli.ListTools(ctx, mcp.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		return names
	}

	h.call(t, ctx, "add_tool", map[string]any{"name": "extra"})
	h.waitNotes(t, string(mcp.MethodNotificationToolsListChanged), 1)
	if !slices.Contains(listed(), "extra") {
		t.Fatal("added tool not listed")
	}
	if got := text(t, h.call(t, ctx, "extra", nil)); got != "extra called" {
		t.Errorf("extra = %q", got)
	}

	h.call(t, ctx, "remove_tool", map[string]any{"name": "extra"})
	h.waitNotes(t, string(mcp.MethodNotificationToolsListChanged), 2)
	if slices.Contains(listed(), "extra") {
		t.Fatal("removed tool still listed")
	}
}

func TestLogReachesClient(t *testing.T) {
	h := newHarness(t)
	level := mcp.SetLevelRequest{}
	level.Params.Level = mcp.LoggingLevelDebug
	// Deprecated in 2026-07-28 but still how a client asks for log
	// notifications, which a proxy must relay for clients that use them.
	//lint:ignore SA1019 the logging feature is what this test exercises
	if err := h.cli.SetLevel(t.Context(), level); err != nil {
		t.Fatal(err)
	}
	h.call(t, t.Context(), "log", map[string]any{"message": "note this", "level": "warning"})
	n := h.waitNotes(t, "notifications/message", 1)[0]
	if n.Params.AdditionalFields["data"] != "note this" || n.Params.AdditionalFields["level"] != "warning" {
		t.Errorf("log notification = %v", n.Params.AdditionalFields)
	}
}

func TestResourcesAndPrompt(t *testing.T) {
	h := newHarness(t)
	ctx := t.Context()
	read := func(uri string) string {
		req := mcp.ReadResourceRequest{}
		req.Params.URI = uri
		res, err := h.cli.ReadResource(ctx, req)
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		tc, ok := mcp.AsTextResourceContents(res.Contents[0])
		if !ok {
			t.Fatalf("read %s: not text", uri)
		}
		return tc.Text
	}
	if got := read(HelloURI); got != HelloText {
		t.Errorf("read hello = %q", got)
	}
	if got := read("test://greeting/bob"); got != "hello, bob" {
		t.Errorf("read greeting = %q", got)
	}
	tmpl, err := h.cli.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
	if err != nil || len(tmpl.ResourceTemplates) != 1 || tmpl.ResourceTemplates[0].URITemplate.Raw() != GreetingTemplate {
		t.Errorf("templates = %+v, %v", tmpl, err)
	}

	preq := mcp.GetPromptRequest{}
	preq.Params.Name = "greet"
	preq.Params.Arguments = map[string]string{"name": "Ada"}
	prompt, err := h.cli.GetPrompt(ctx, preq)
	if err != nil {
		t.Fatal(err)
	}
	if tc, ok := mcp.AsTextContent(prompt.Messages[0].Content); !ok || tc.Text != "Please greet Ada." {
		t.Errorf("prompt = %+v", prompt.Messages)
	}

	creq := mcp.CompleteRequest{}
	creq.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: "greet"}
	creq.Params.Argument.Name = "name"
	creq.Params.Argument.Value = "al"
	comp, err := h.cli.Complete(ctx, creq)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(comp.Completion.Values, []string{"alice", "albert"}) {
		t.Errorf("completion = %v", comp.Completion.Values)
	}
}

func TestHTTPTransports(t *testing.T) {
	srv := New(Options{Name: "beta", Clock: clock.Real{}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- srv.ServeHTTP(ctx, ln, true) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	streamable, err := client.NewStreamableHttpClient(base + StreamablePath)
	if err != nil {
		t.Fatal(err)
	}
	sse, err := client.NewSSEMCPClient(base + SSEPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, cli := range map[string]*client.Client{"streamable": streamable, "sse": sse} {
		t.Run(name, func(t *testing.T) {
			defer cli.Close()
			if err := cli.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := cli.Initialize(ctx, mcp.InitializeRequest{}); err != nil {
				t.Fatal(err)
			}
			req := mcp.CallToolRequest{}
			req.Params.Name = "whoami"
			res, err := cli.CallTool(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got := text(t, res); got != "beta" {
				t.Errorf("whoami = %q", got)
			}
		})
	}
}
