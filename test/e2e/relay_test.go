package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	What    string          `json:"what"`
	OK      bool            `json:"ok"`
	// Instructions and Described (the tools with their schemas, as the
	// client printed them) are those of a "described" event.
	Instructions *string         `json:"instructions"`
	Described    json.RawMessage `json:"described"`
	Result       struct {
		IsError bool `json:"isError"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		Messages []json.RawMessage `json:"messages"`
		Contents []json.RawMessage `json:"contents"`
	} `json:"result"`
}

// everythingAsking are server-everything's tools that ask their client
// something, listed only to clients that declare the capability.
var everythingAsking = []string{"trigger-sampling-request", "trigger-elicitation-request", "trigger-url-elicitation", "get-roots-list"}

// The official TypeScript SDK client, declaring sampling, elicitation and
// roots, in front of the gate in front of server-everything, compared with
// the same client directly in front of server-everything: a prompt and a
// resource asked for right after initialize are served; the instructions
// and every tool's inputSchema and outputSchema are the upstream's, byte
// for byte as the client decodes them (an allow-all policy adds no role
// note); every tool is listed; and each request server-everything sends
// reaches the client's handler, whose answer is in the tool's result.
func TestTypeScriptRelay(t *testing.T) {
	if _, err := os.Stat(filepath.Join(moduleRoot, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the MCP TypeScript SDK is not installed (%v): run npm ci", err)
		}
		t.Skipf("the MCP TypeScript SDK is not installed (%v): run npm ci", err)
	}
	// Both at once: the direct run only describes.
	directArgs := append([]string{"--describe", "--"}, Everything(t)...)
	var directEvents []relayEvent
	var wg sync.WaitGroup
	wg.Go(func() { directEvents = runRelay(t, directArgs) })
	// The upstream's instructions are compared, so initialize waits for
	// the upstream however slowly a loaded machine starts it.
	events := runRelay(t, append([]string{"--", GateBin, "--policy", AllowAllPolicy(t), "--init-wait", "2m", "--"}, Everything(t)...))
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	asked := map[string][]relayEvent{}
	results := map[string]relayEvent{}
	early := map[string]relayEvent{}
	var listed []string
	var described *relayEvent
	rootsAgain := false
	for _, e := range events {
		switch e.Event {
		case "early":
			early[e.What] = e
		case "described":
			described = &e
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

	var direct []string
	var directDescribed *relayEvent
	for _, e := range directEvents {
		switch e.Event {
		case "listed":
			direct = e.Tools
		case "described":
			directDescribed = &e
		}
	}
	if len(listed) != 17 || !sameSet(listed, direct) {
		t.Errorf("through the gate %d tools %v; directly, to the same client, %d: %v", len(listed), listed, len(direct), direct)
	}
	for _, name := range everythingAsking {
		if !slices.Contains(listed, name) {
			t.Errorf("%s not listed through the gate", name)
		}
	}
	if described == nil || directDescribed == nil {
		t.Fatalf("no tools described: through the gate %v, directly %v", described, directDescribed)
	}
	var schemas []struct {
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"inputSchema"`
	}
	if err := json.Unmarshal(described.Described, &schemas); err != nil || len(schemas) != 17 || len(schemas[0].InputSchema) == 0 {
		t.Errorf("tools described through the gate (%v): %s", err, described.Described)
	}
	if !bytes.Equal(described.Described, directDescribed.Described) {
		t.Errorf("tool schemas differ\ndirect: %s\ngate:   %s", directDescribed.Described, described.Described)
	}
	if described.Instructions == nil || *described.Instructions == "" || directDescribed.Instructions == nil ||
		*described.Instructions != *directDescribed.Instructions {
		t.Errorf("instructions through the gate %v, directly %v", described.Instructions, directDescribed.Instructions)
	}
	// Asked for before anything else, each is served as directly.
	for _, what := range []string{"prompt", "resource"} {
		if e, ok := early[what]; !ok || !e.OK || len(e.Result.Messages)+len(e.Result.Contents) == 0 {
			t.Errorf("%s right after initialize: %+v", what, e)
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
}

// runRelay runs test/e2e/ts/relay.mjs with args and returns what it printed.
func runRelay(t *testing.T, args []string) []relayEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(moduleRoot, "test", "e2e", "ts", "relay.mjs")}, args...)...)
	cmd.Dir = moduleRoot
	stderr := &SyncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Error(err)
		return nil
	}
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return nil
	}
	var events []relayEvent
	failed := false
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var e relayEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Errorf("relay.mjs printed %q: %v", sc.Text(), err)
			failed = true
			continue
		}
		events = append(events, e)
	}
	if err := sc.Err(); err != nil {
		t.Errorf("reading relay.mjs: %v", err)
		failed = true
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("relay.mjs %v: %v", args, err)
		failed = true
	}
	if failed {
		t.Errorf("relay.mjs %v stderr:\n%s", args, stderr)
	}
	return events
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
