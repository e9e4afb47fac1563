package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// relayEvent is one line of test/e2e/ts/relay.mjs's output.
type relayEvent struct {
	Event   string          `json:"event"`
	Tools   []string        `json:"tools"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Tool    string          `json:"tool"`
	Message string          `json:"message"`
	Result  struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"result"`
}

// everythingAsking are server-everything's tools that ask their client
// something, listed only to clients that declare the capability.
var everythingAsking = []string{"trigger-sampling-request", "trigger-elicitation-request", "trigger-url-elicitation", "get-roots-list"}

// The official TypeScript SDK client, declaring sampling, elicitation and
// roots, in front of the gate in front of server-everything: every tool is
// listed, as directly, and each request server-everything sends reaches the
// client's handler, whose answer is in the tool's result.
func TestTypeScriptRelay(t *testing.T) {
	if _, err := os.Stat(filepath.Join(moduleRoot, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the MCP TypeScript SDK is not installed (%v): run npm ci", err)
		}
		t.Skipf("the MCP TypeScript SDK is not installed (%v): run npm ci", err)
	}
	argv := append([]string{filepath.Join(moduleRoot, "test", "e2e", "ts", "relay.mjs"), "--",
		GateBin, "--policy", AllowAllPolicy(t), "--"}, Everything(t)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", argv...)
	cmd.Dir = moduleRoot
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var events []relayEvent
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var e relayEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Errorf("relay.mjs printed %q: %v", sc.Text(), err)
			continue
		}
		events = append(events, e)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("relay.mjs: %v", err)
	}
	if t.Failed() {
		t.Fatalf("relay.mjs and gate stderr:\n%s", stderr)
	}

	asked := map[string][]relayEvent{}
	results := map[string]relayEvent{}
	var listed []string
	rootsAgain := false
	for _, e := range events {
		switch e.Event {
		case "listed":
			listed = e.Tools
		case "asked":
			asked[e.Method] = append(asked[e.Method], e)
		case "result":
			results[e.Tool] = e
		case "rootsAgain":
			rootsAgain = true
		case "error":
			t.Errorf("client error (%s): %s", e.Tool, e.Message)
		}
	}

	direct := directEverythingTools(t)
	if len(listed) != 17 || !sameSet(listed, direct) {
		t.Errorf("through the gate %d tools %v; directly, to the same client capabilities, %d: %v", len(listed), listed, len(direct), direct)
	}
	for _, name := range everythingAsking {
		if !slices.Contains(listed, name) {
			t.Errorf("%s not listed through the gate", name)
		}
	}

	// What each handler was asked is what server-everything sent.
	if s := asked["sampling/createMessage"]; len(s) != 1 || !strings.Contains(string(s[0].Params), "relay me") {
		t.Errorf("sampling handler asked %+v", s)
	}
	var form, url bool
	for _, e := range asked["elicitation/create"] {
		var p struct {
			Mode    string `json:"mode"`
			URL     string `json:"url"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(e.Params, &p)
		form = form || (p.Mode != "url" && strings.Contains(p.Message, "Please provide inputs"))
		url = url || (p.Mode == "url" && p.URL == "https://example.com/consent")
	}
	if !form || !url {
		t.Errorf("elicitation handler asked %+v (form seen %v, url seen %v)", asked["elicitation/create"], form, url)
	}
	if len(asked["roots/list"]) == 0 {
		t.Error("roots handler never asked")
	}

	// Each tool's result carries the client's answer.
	for tool, want := range map[string]string{
		"trigger-sampling-request":    "sampled by the TS client",
		"trigger-elicitation-request": "Ada Through-The-Gate",
		"trigger-url-elicitation":     "User completed the URL elicitation flow",
		"get-roots-list":              "file:///ts-client/workspace",
	} {
		r, ok := results[tool]
		var text []string
		for _, c := range r.Result.Content {
			text = append(text, c.Text)
		}
		if !ok || r.Result.IsError || !strings.Contains(strings.Join(text, "\n"), want) {
			t.Errorf("%s: want %q in the result, got %+v", tool, want, r)
		}
	}
	// notifications/roots/list_changed reached server-everything, which
	// asked the client for its roots again, outside any call.
	if !rootsAgain {
		t.Error("no roots/list after the client's roots/list_changed")
	}
	if t.Failed() {
		t.Logf("gate stderr:\n%s", stderr)
	}
}

// directEverythingTools lists server-everything's tools directly, to an
// mcp-go client declaring what relay.mjs declares.
func directEverythingTools(t *testing.T) []string {
	t.Helper()
	c, err := client.NewStdioMCPClient(Everything(t)[0], nil, Everything(t)[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	req := mcp.InitializeRequest{}
	req.Params.ProtocolVersion = mcp.ProtocolVersion20251125
	req.Params.ClientInfo = mcp.Implementation{Name: "direct", Version: "1"}
	req.Params.Capabilities = mcp.ClientCapabilities{
		Sampling:    &mcp.SamplingCapability{},
		Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}},
		Roots: &struct {
			ListChanged bool `json:"listChanged,omitempty"`
		}{ListChanged: true},
	}
	if _, err := c.Initialize(ctx, req); err != nil {
		t.Fatal(err)
	}
	res, err := c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	return names
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// goAnswers answers the requests relayed to an mcp-go client and
// remembers which it was asked.
type goAnswers struct{ asked chan string }

func (a goAnswers) CreateMessage(_ context.Context, req mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	a.asked <- "sampling"
	return &mcp.CreateMessageResult{Model: "go-client-model", SamplingMessage: mcp.SamplingMessage{Role: mcp.RoleAssistant, Content: mcp.TextContent{Type: "text", Text: "sampled by the Go client"}}}, nil
}

func (a goAnswers) Elicit(context.Context, mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	a.asked <- "elicitation"
	return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"name": "Grace Through-The-Gate"}}}, nil
}

func (a goAnswers) ListRoots(context.Context, mcp.ListRootsRequest) (*mcp.ListRootsResult, error) {
	a.asked <- "roots"
	return &mcp.ListRootsResult{Roots: []mcp.Root{{URI: "file:///go-client/workspace", Name: "Go client workspace"}}}, nil
}

// mcp-go's client, with handlers for sampling, elicitation and roots, on
// both fronts of the gate in front of server-everything: each request
// reaches the client, and its answer the tool's result. On the HTTP front
// the upstream is shared, declared every capability the gate relays, and
// the request goes to the session whose call caused it.
func TestGoClientRelay(t *testing.T) {
	fronts := []struct {
		name    string
		connect func(t *testing.T, opts ...client.ClientOption) *client.Client
	}{
		{"stdio", func(t *testing.T, opts ...client.ClientOption) *client.Client {
			c, _ := StdioGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...), opts...)
			return c
		}},
		{"serve", func(t *testing.T, opts ...client.ClientOption) *client.Client {
			g := ServeGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...)...)
			//lint:ignore SA1019 the gate sends its HTTP sessions requests on the listening stream
			return g.ClientWith(t, []transport.StreamableHTTPCOption{transport.WithContinuousListening()}, opts...)
		}},
	}
	calls := []struct {
		tool  string
		args  map[string]any
		asked string
		want  string
	}{
		{"trigger-sampling-request", map[string]any{"prompt": "relay me", "maxTokens": 20}, "sampling", "sampled by the Go client"},
		{"trigger-elicitation-request", map[string]any{}, "elicitation", "Grace Through-The-Gate"},
		{"get-roots-list", map[string]any{}, "roots", "file:///go-client/workspace"},
	}
	for _, f := range fronts {
		t.Run(f.name, func(t *testing.T) {
			a := goAnswers{asked: make(chan string, 16)}
			c := f.connect(t, client.WithProtocolVersion(mcp.ProtocolVersion20251125),
				client.WithSamplingHandler(a), client.WithElicitationHandler(a), client.WithRootsHandler(a))
			seen := map[string]bool{}
			for _, tc := range calls {
				got := Call(t, c, tc.tool, tc.args)
				if got.IsError || !strings.Contains(Text(t, got), tc.want) {
					t.Errorf("%s: want %q in the result, got %+v", tc.tool, tc.want, got)
				}
				// server-everything may have asked for roots on its own,
				// before the call.
				drain(a.asked, seen)
				if !seen[tc.asked] {
					t.Errorf("%s: the client was never asked for %s", tc.tool, tc.asked)
				}
			}
		})
	}
}

// drain records what was asked so far.
func drain(asked <-chan string, seen map[string]bool) {
	for {
		select {
		case got := <-asked:
			seen[got] = true
		default:
			return
		}
	}
}
