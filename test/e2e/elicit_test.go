package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// The person, not the model: a rule's required justification is asked of
// the user through the client (elicitation), and a confirm rule has the
// user confirm each call. The PIM side is the emulator; what the upstream
// ran is the test upstream's own account (its arguments tool).

const askTools = `  calls: allow
  arguments: allow
  send_payment: {role: Treasury, justification: required}
  delete_database: {role: Database Administrator, confirm: true}
  "*": deny
`

// person answers the gate's forms as the test says, and keeps what it was
// asked.
type person struct {
	mu     sync.Mutex
	asked  []mcp.ElicitationParams
	answer mcp.ElicitationResponse
}

func (p *person) Elicit(_ context.Context, r mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, r.Params)
	return &mcp.ElicitationResult{ElicitationResponse: p.answer}, nil
}

func (p *person) forms() []mcp.ElicitationParams {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]mcp.ElicitationParams(nil), p.asked...)
}

// inputSchema is tool's inputSchema as the gate lists it to c.
func inputSchema(t *testing.T, c *client.Client, tool string) map[string]any {
	t.Helper()
	tools, err := c.ListTools(context.Background(), mcp.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools.Tools {
		if tl.Name != tool {
			continue
		}
		raw := tl.RawInputSchema
		if raw == nil {
			raw, _ = json.Marshal(tl.InputSchema)
		}
		var s map[string]any
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("%s not listed", tool)
	return nil
}

func property(schema map[string]any, name string) (map[string]any, bool) {
	props, _ := schema["properties"].(map[string]any)
	p, ok := props[name].(map[string]any)
	return p, ok
}

// auditRecords reads the audit log's records of tool.
func auditRecords(t *testing.T, file, tool string) []map[string]any {
	t.Helper()
	all, err := readAuditRecords(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range all {
		if r["tool"] == tool {
			out = append(out, r)
		}
	}
	return out
}

// readAuditRecords reads every record of the audit log, failing on a line
// that is not JSON, so that a test waiting for a record can retry it.
func readAuditRecords(file string) ([]map[string]any, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("audit line %q: %w", line, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// TestJustificationAskedOfTheUser: a client that declared elicitation is
// asked for the justification before any PIM request; the request at the
// emulator carries the user's answer, the tool gets the arguments as sent,
// and the audit record says the justification came from the user. Over
// stdio and Streamable HTTP.
func TestJustificationAskedOfTheUser(t *testing.T) {
	for _, front := range []string{"stdio", "http"} {
		t.Run(front, func(t *testing.T) {
			e := startPIM(t)
			policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: alice, tools: askTools})
			u := &person{answer: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept, Content: map[string]any{"justification": "quarter-end supplier run"}}}
			var c *client.Client
			if front == "stdio" {
				c, _ = StdioGate(t, nil, append([]string{"--policy", policyFile, "--"}, append(Upstream("db"), "--demo")...), client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithElicitationHandler(u))
			} else {
				g := ServeGate(t, nil, "--policy", policyFile, "--", Upstream("db")[0], "--name", "db", "--demo")
				c = g.Client(t, client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithElicitationHandler(u))
			}
			if _, offered := property(inputSchema(t, c, "send_payment"), "justification"); offered {
				t.Fatalf("a client that can ask its user is offered a justification argument: %v", inputSchema(t, c, "send_payment"))
			}

			done := make(chan *mcp.CallToolResult, 1)
			go func() {
				res, err := TryCall(context.Background(), c, "send_payment", map[string]any{"to": "ACME", "amount": 5})
				if err != nil {
					t.Error(err)
				}
				done <- res
			}()
			req := e.pendingRequest(t, alice)
			if !strings.HasSuffix(req.Justification, `reason given: "quarter-end supplier run"`) {
				t.Fatalf("PIM request justification = %q, want the user's answer", req.Justification)
			}
			forms := u.forms()
			if len(forms) != 1 || !strings.Contains(forms[0].Message, "send_payment") || !strings.Contains(forms[0].Message, "PIM role 'Treasury'") || !strings.Contains(forms[0].Message, `"to"="ACME"`) {
				t.Fatalf("forms = %+v, want one naming the tool, the role and the arguments", forms)
			}
			if err := e.srv.Approve(req.ID); err != nil {
				t.Fatal(err)
			}
			if res := <-done; res == nil || res.IsError || Text(t, res) != "paid 5 EUR to ACME" {
				t.Fatalf("call after approval: %+v", res)
			}
			if got := Text(t, Call(t, c, "arguments", map[string]any{"tool": "send_payment"})); got != `{"amount":5,"to":"ACME"}` {
				t.Fatalf("the upstream got %s", got)
			}
			recs := auditRecords(t, auditFile, "send_payment")
			if len(recs) == 0 || fmt.Sprint(recs[0]["elicited"]) != "[justification]" || recs[0]["outcome"] != "admitted" {
				t.Fatalf("audit records = %v, want the admitted one to say the justification was elicited", recs)
			}
		})
	}
}

// TestJustificationArgumentForClientsThatCannotAsk: without elicitation the
// tool's schema offers the justification argument, the PIM request carries
// it, and the upstream never receives it.
func TestJustificationArgumentForClientsThatCannotAsk(t *testing.T) {
	e := startPIM(t)
	policyFile, auditFile := e.gatedPolicy(t, gateOpts{principal: alice, tools: askTools})
	c := demoGate(t, policyFile)
	schema := inputSchema(t, c, "send_payment")
	p, ok := property(schema, "justification")
	if !ok || p["type"] != "string" || !strings.HasSuffix(fmt.Sprint(p["description"]), "for the PIM request; not sent to the tool") {
		t.Fatalf("send_payment inputSchema = %v, want a justification string property for the PIM request", schema)
	}
	if _, ok := property(schema, "to"); !ok {
		t.Fatalf("the tool's own properties are gone: %v", schema)
	}

	done := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, err := TryCall(context.Background(), c, "send_payment", map[string]any{"to": "ACME", "amount": 5, "justification": "invoice 77"})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	req := e.pendingRequest(t, alice)
	if !strings.HasSuffix(req.Justification, `reason given: "invoice 77"`) {
		t.Fatalf("PIM request justification = %q", req.Justification)
	}
	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res == nil || res.IsError {
		t.Fatalf("call after approval: %+v", res)
	}
	if got := Text(t, Call(t, c, "arguments", map[string]any{"tool": "send_payment"})); got != `{"amount":5,"to":"ACME"}` {
		t.Fatalf("the upstream got %s, want the arguments without the justification", got)
	}
	if recs := auditRecords(t, auditFile, "send_payment"); len(recs) == 0 || recs[0]["elicited"] != nil || fmt.Sprint(recs[0]["argKeys"]) != "[amount to]" {
		t.Fatalf("audit records = %v, want argument names of what was forwarded and nothing elicited", recs)
	}
}

// TestConfirmDeclined: a confirm rule's call the user declines is refused
// with nothing requested at the emulator and nothing forwarded; a client
// that cannot ask gets it refused likewise.
func TestConfirmDeclined(t *testing.T) {
	e := startPIM(t)
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice, tools: askTools})
	u := &person{answer: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionDecline}}
	c, _ := StdioGate(t, nil, append([]string{"--policy", policyFile, "--"}, append(Upstream("db"), "--demo")...), client.WithProtocolVersion(mcp.ProtocolVersion20251125), client.WithElicitationHandler(u))
	res := Call(t, c, "delete_database", map[string]any{"name": "prod"})
	if !res.IsError || !strings.Contains(Text(t, res), "declined") {
		t.Fatalf("declined call: %s", Text(t, res))
	}
	forms := u.forms()
	if len(forms) != 1 || !strings.HasPrefix(forms[0].Message, "Confirm this call: tool delete_database on upstream ") || !strings.Contains(forms[0].Message, `"name"="prod"`) || !strings.Contains(forms[0].Message, "Database Administrator") {
		t.Fatalf("forms = %+v", forms)
	}

	plain := demoGate(t, policyFile)
	if res := Call(t, plain, "delete_database", map[string]any{"name": "prod"}); !res.IsError || !strings.Contains(Text(t, res), "cannot ask its user") {
		t.Fatalf("confirm rule without elicitation: %s", Text(t, res))
	}
	if e.srv.HitCount() != 0 || e.srv.CreateCount() != 0 {
		t.Fatalf("the emulator saw %d requests (%d creates) for calls nobody confirmed", e.srv.HitCount(), e.srv.CreateCount())
	}
	for _, cl := range []*client.Client{c, plain} {
		if got := upstreamRan(t, cl, "delete_database"); got != "0" {
			t.Fatalf("delete_database ran %s times", got)
		}
	}
}
