package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// everythingCalls are arguments for every tool of server-everything that
// needs no network and answers the same on every run.
var everythingCalls = map[string]map[string]any{
	"echo":                           {"message": "hello through the gate"},
	"get-annotated-message":          {"messageType": "success", "includeImage": true},
	"get-resource-links":             {"count": 2},
	"get-resource-reference":         {"resourceType": "Text", "resourceId": 1},
	"get-structured-content":         {"location": "Chicago"},
	"get-sum":                        {"a": 2, "b": 3},
	"get-tiny-image":                 {},
	"gzip-file-as-resource":          {"name": "x.gz", "data": "data:text/plain;base64,aGVsbG8="},
	"toggle-simulated-logging":       {},
	"toggle-subscriber-updates":      {},
	"trigger-long-running-operation": {"duration": 0.2, "steps": 2},
}

// everythingUnstable are tools whose answers differ between two server
// instances (environment, random ids): they must succeed, not match.
var everythingUnstable = map[string]map[string]any{
	"get-env": {},
	// A tool that runs only as a task: the gate waits for the task's result.
	"simulate-research-query": {"topic": "proxies"},
}

func TestEverythingPassThrough(t *testing.T) {
	for _, pv := range Protocols {
		t.Run(pv.Name, func(t *testing.T) {
			direct, err := client.NewStdioMCPClient(Everything(t)[0], nil, Everything(t)[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = direct.Close() })
			Initialize(t, direct)
			gate, _ := StdioGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...), pv.Opts...)
			ctx := context.Background()

			// Tools: the same definitions (task markers aside), each callable
			// with the same answer.
			dt, err := direct.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			gt, err := gate.ListTools(ctx, mcp.ListToolsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			for i := range dt.Tools {
				dt.Tools[i].Execution = nil
			}
			sameJSON(t, "tools", dt.Tools, gt.Tools)
			for _, tool := range gt.Tools {
				args, stable := everythingCalls[tool.Name]
				if !stable {
					var ok bool
					if args, ok = everythingUnstable[tool.Name]; !ok {
						t.Errorf("tool %s has no test call", tool.Name)
						continue
					}
				}
				got := Call(t, gate, tool.Name, args)
				if got.IsError {
					t.Errorf("%s through the gate: %s", tool.Name, Text(t, got))
				}
				if stable {
					want := Call(t, direct, tool.Name, args)
					sameJSON(t, tool.Name, want, got)
				}
			}

			// Resources: listed alike, each readable, templates too.
			dr, err := direct.ListResources(ctx, mcp.ListResourcesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			gr, err := gate.ListResources(ctx, mcp.ListResourcesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "resources", dr.Resources, gr.Resources)
			for _, r := range gr.Resources {
				readAlike(t, direct, gate, r.URI)
			}
			dtp, err := direct.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			gtp, err := gate.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "resource templates", dtp.ResourceTemplates, gtp.ResourceTemplates)
			readAlike(t, direct, gate, "demo://resource/dynamic/text/2")
			readAlike(t, direct, gate, "demo://resource/dynamic/blob/3")

			// Prompts: listed alike, each one answered alike.
			dp, err := direct.ListPrompts(ctx, mcp.ListPromptsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			gp, err := gate.ListPrompts(ctx, mcp.ListPromptsRequest{})
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, "prompts", dp.Prompts, gp.Prompts)
			promptArgs := map[string]map[string]string{
				"args-prompt":        {"city": "Oslo", "state": "Viken"},
				"completable-prompt": {"department": "Engineering", "name": "Ada"},
				"resource-prompt":    {"resourceType": "Text", "resourceId": "1"},
				"simple-prompt":      {},
			}
			for _, p := range gp.Prompts {
				req := mcp.GetPromptRequest{}
				req.Params.Name = p.Name
				req.Params.Arguments = promptArgs[p.Name]
				want, err := direct.GetPrompt(ctx, req)
				if err != nil {
					t.Fatalf("direct prompt %s: %v", p.Name, err)
				}
				got, err := gate.GetPrompt(ctx, req)
				if err != nil {
					t.Fatalf("gate prompt %s: %v", p.Name, err)
				}
				sameJSON(t, "prompt "+p.Name, want.Messages, got.Messages)
			}

			// Completion of a prompt argument.
			creq := mcp.CompleteRequest{}
			creq.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: "completable-prompt"}
			creq.Params.Argument = mcp.CompleteArgument{Name: "department", Value: "E"}
			want, err := direct.Complete(ctx, creq)
			if err != nil {
				t.Fatal(err)
			}
			got, err := gate.Complete(ctx, creq)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Completion.Values) == 0 || !slices.Equal(want.Completion.Values, got.Completion.Values) {
				t.Errorf("completion: direct %v, gate %v", want.Completion.Values, got.Completion.Values)
			}
		})
	}
}

// TestEverythingProgress relays server-everything's progress notifications.
func TestEverythingProgress(t *testing.T) {
	gate, _ := StdioGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...), Protocols[0].Opts...)
	var mu sync.Mutex
	var progress []float64
	gate.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method == string(mcp.MethodNotificationProgress) && n.Params.AdditionalFields["progressToken"] == "everything" {
			mu.Lock()
			progress = append(progress, n.Params.AdditionalFields["progress"].(float64))
			mu.Unlock()
		}
	})
	req := mcp.CallToolRequest{}
	req.Params.Name = "trigger-long-running-operation"
	req.Params.Arguments = map[string]any{"duration": 0.3, "steps": 3}
	req.Params.Meta = &mcp.Meta{ProgressToken: "everything"}
	res, err := gate.CallTool(context.Background(), req)
	if err != nil || res.IsError {
		t.Fatalf("%v %+v", err, res)
	}
	Eventually(t, "every progress notification", func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(progress, []float64{1, 2, 3}) {
			return fmt.Errorf("progress %v, want 1 2 3", progress)
		}
		return nil
	})
}

func readAlike(t *testing.T, direct, gate *client.Client, uri string) {
	t.Helper()
	req := mcp.ReadResourceRequest{}
	req.Params.URI = uri
	want, err := direct.ReadResource(context.Background(), req)
	if err != nil {
		t.Fatalf("direct read %s: %v", uri, err)
	}
	got, err := gate.ReadResource(context.Background(), req)
	if err != nil {
		t.Fatalf("gate read %s: %v", uri, err)
	}
	sameJSON(t, uri, want.Contents, got.Contents)
}

// sameJSON compares what two values look like on the wire, ignoring the
// metadata each protocol generation stamps on results.
func sameJSON(t *testing.T, what string, want, got any) {
	t.Helper()
	w, g := wire(t, want), wire(t, got)
	if w != g {
		t.Errorf("%s differs\ndirect: %s\ngate:   %s", what, w, g)
	}
}

func wire(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		t.Fatal(err)
	}
	if m, ok := generic.(map[string]any); ok {
		delete(m, "_meta")
		delete(m, "resultType")
	}
	b, _ = json.Marshal(generic)
	return createdAt.ReplaceAllString(string(b), "created at TIME")
}

// createdAt is the clock time server-everything puts in its dynamic
// resources: two instances started a second apart differ there only.
var createdAt = regexp.MustCompile(`created at \d{1,2}:\d{2}:\d{2}[\s\x{202f}\x{a0}]?[AP]M`)

// TestEverythingToolDefinitionsRaw compares server-everything's tools/list
// as sent on the wire, directly and through the gate: every tool definition
// is the same JSON value, schemas keyword for keyword, apart from the task
// marker the gate removes (docs/proxy.md).
func TestEverythingToolDefinitionsRaw(t *testing.T) {
	opts := Protocols[0].Opts
	direct, err := client.NewStdioMCPClientWithOptions(Everything(t)[0], nil, Everything(t)[1:])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close() })
	Initialize(t, direct)
	gate, _ := StdioGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...), opts...)

	want, got := rawTools(t, direct), rawTools(t, gate)
	if len(want) == 0 {
		t.Fatal("server-everything listed no tools")
	}
	for i := range want {
		delete(want[i], "execution")
	}
	sameJSON(t, "tools/list", want, got)
}

// rawTools lists c's tools from the raw JSON of tools/list, without the
// decoding of mcp.Tool, which knows only some JSON Schema keywords.
func rawTools(t *testing.T, c *client.Client) []map[string]any {
	t.Helper()
	resp, err := c.GetTransport().SendRequest(context.Background(), transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(int64(1 << 30)), Method: string(mcp.MethodToolsList),
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatalf("tools/list: %+v", resp.Error)
	}
	var res struct {
		Tools []map[string]any `json:"tools"`
	}
	if err := json.Unmarshal(resp.Result, &res); err != nil {
		t.Fatal(err)
	}
	return res.Tools
}

// TestEverythingRightAfterInitialize asks for a prompt, a resource and a
// completion while server-everything is still starting (held back until
// the requests are sent, past the gate's 5 s initialize budget):
// each waits for it rather than being answered "not found".
func TestEverythingRightAfterInitialize(t *testing.T) {
	for _, pv := range Protocols {
		t.Run(pv.Name, func(t *testing.T) {
			start := filepath.Join(t.TempDir(), "start")
			held := append([]string{"sh", "-c", `until [ -e "$0" ]; do sleep 0.02; done; exec "$@"`, start}, Everything(t)...)
			gate, _ := StdioGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, held...), pv.Opts...)
			ctx := context.Background()
			var wg sync.WaitGroup
			defer func() {
				if err := os.WriteFile(start, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				wg.Wait()
			}()
			wg.Go(func() {
				req := mcp.GetPromptRequest{}
				req.Params.Name = "simple-prompt"
				if res, err := gate.GetPrompt(ctx, req); err != nil || len(res.Messages) == 0 {
					t.Errorf("prompts/get: %v %+v", err, res)
				}
			})
			wg.Go(func() {
				req := mcp.ReadResourceRequest{}
				req.Params.URI = "demo://resource/dynamic/text/2"
				if res, err := gate.ReadResource(ctx, req); err != nil || len(res.Contents) == 0 {
					t.Errorf("resources/read: %v %+v", err, res)
				}
			})
			wg.Go(func() {
				req := mcp.CompleteRequest{}
				req.Params.Ref = mcp.PromptReference{Type: "ref/prompt", Name: "completable-prompt"}
				req.Params.Argument = mcp.CompleteArgument{Name: "department", Value: "E"}
				if res, err := gate.Complete(ctx, req); err != nil || len(res.Completion.Values) == 0 {
					t.Errorf("completion/complete: %v %+v", err, res)
				}
			})
		})
	}
}

// TestEverythingInstructions: the gate's initialize carries
// server-everything's instructions, as the server gives them, though the
// gate starts it only when the client connects (with --init-wait long
// enough for the slowest start of a loaded machine).
func TestEverythingInstructions(t *testing.T) {
	initialize := func(c *client.Client) string {
		t.Helper()
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		req := mcp.InitializeRequest{}
		req.Params.ProtocolVersion = mcp.ProtocolVersion20251125
		req.Params.ClientInfo = mcp.Implementation{Name: "e2e", Version: "1"}
		res, err := c.Initialize(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res.Instructions
	}
	direct, err := client.NewStdioMCPClientWithOptions(Everything(t)[0], nil, Everything(t)[1:])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close() })
	want := initialize(direct)
	if want == "" {
		t.Fatal("server-everything gave no instructions")
	}
	stderr := &SyncBuffer{}
	gate := client.NewClient(transport.NewStdioWithOptions(GateBin, nil,
		append([]string{"--policy", AllowAllPolicy(t), "--init-wait", "2m", "--"}, Everything(t)...), transport.WithCommandStderrWriter(stderr)),
		client.WithProtocolVersion(mcp.ProtocolVersion20251125))
	t.Cleanup(func() { _ = gate.Close() })
	if got := initialize(gate); got != want {
		t.Errorf("instructions through the gate %q, want %q\n%s", got, want, stderr)
	}
}

// TestEverythingNoUpstreamTaskStatus: a task-only tool is run as a task
// upstream for a plain call; that task's notifications/tasks/status are the
// gate's own and never reach the client, which knows no such task.
func TestEverythingNoUpstreamTaskStatus(t *testing.T) {
	gate, _ := StdioGate(t, nil, append([]string{"--policy", AllowAllPolicy(t), "--"}, Everything(t)...), Protocols[0].Opts...)
	var mu sync.Mutex
	var seen []string
	gate.OnNotification(func(n mcp.JSONRPCNotification) {
		mu.Lock()
		seen = append(seen, n.Method)
		mu.Unlock()
	})
	if res := Call(t, gate, "simulate-research-query", everythingUnstable["simulate-research-query"]); res.IsError {
		t.Fatalf("simulate-research-query: %s", Text(t, res))
	}
	// A later call's answer comes after whatever the first one caused.
	Call(t, gate, "echo", everythingCalls["echo"])
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(seen, string(mcp.MethodNotificationTasksStatus)) {
		t.Errorf("the client got the gate's upstream task status: %v", seen)
	}
}
