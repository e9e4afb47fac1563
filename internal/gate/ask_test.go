package gate

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/audit"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/proxy"
)

const askPolicy = `version: 1
approvals:
  tenantId: 00000000-1111-2222-3333-444444444444
  wait: 1m
tools:
  pay: {role: Treasury, justification: required, ticket: required}
  wire: {role: Treasury, confirm: true}
  wire_noted: {role: Treasury, confirm: true, justification: required}
  noted:
    - when: {justification: "ok*"}
      role: Treasury
      justification: required
    - deny
  "*": deny
`

// user answers the gate's forms as the test says, and keeps them.
type user struct {
	mu     sync.Mutex
	asked  []mcp.ElicitationParams
	answer func(mcp.ElicitationParams) (*mcp.ElicitationResult, error)
}

func (u *user) elicit(_ context.Context, p mcp.ElicitationParams) (*mcp.ElicitationResult, error) {
	u.mu.Lock()
	u.asked = append(u.asked, p)
	u.mu.Unlock()
	return u.answer(p)
}

func (u *user) forms() []mcp.ElicitationParams {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.asked)
}

func accept(content map[string]any) func(mcp.ElicitationParams) (*mcp.ElicitationResult, error) {
	return func(mcp.ElicitationParams) (*mcp.ElicitationResult, error) {
		return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: mcp.ElicitationResponseActionAccept, Content: content}}, nil
	}
}

func answerWith(action mcp.ElicitationResponseAction) func(mcp.ElicitationParams) (*mcp.ElicitationResult, error) {
	return func(mcp.ElicitationParams) (*mcp.ElicitationResult, error) {
		return &mcp.ElicitationResult{ElicitationResponse: mcp.ElicitationResponse{Action: action}}, nil
	}
}

// grant completes the next activation the gate starts and returns its
// request.
func (h *harness) grant(t *testing.T) pim.Request {
	t.Helper()
	select {
	case a := <-h.act.started:
		a.result <- activationResult{grant: pim.Grant{RequestID: "req-1", Start: t0, End: t0.Add(15 * time.Minute)}}
		return a.req
	case <-time.After(10 * time.Second):
		t.Fatal("no activation started")
	}
	return pim.Request{}
}

// A client that can ask: the user gives the justification and ticket in
// one form naming the call and the role (secrets masked), the PIM request
// carries them, the arguments reach the tool as sent, and the record says
// the values came from the user. A grant in the cache asks nothing more.
func TestRequiredValuesAreAskedOfTheUser(t *testing.T) {
	h := newHarness(t, askPolicy)
	u := &user{answer: accept(map[string]any{"justification": " invoice 77 ", "ticket": "CHG-9"})}
	args := `{"amount":5,"apiToken":"s3cret","justification":"the model's"}`
	done := h.callAsync(t.Context(), &proxy.Call{Tool: "pay", Upstream: "bank", Arguments: json.RawMessage(args), Elicit: u.elicit})
	req := h.grant(t)
	ans := <-done
	if text, isErr := toolError(t, ans.res); isErr || text != "done" {
		t.Fatalf("answer = %q, %v", text, isErr)
	}
	if !strings.HasSuffix(req.Justification, `reason given: "invoice 77"`) || req.TicketNumber != "CHG-9" {
		t.Fatalf("PIM request = %+v, want the user's justification and ticket", req)
	}
	forms := u.forms()
	if len(forms) != 1 {
		t.Fatalf("asked %d times, want once", len(forms))
	}
	msg := forms[0].Message
	for _, want := range []string{"pay", "bank", "PIM role 'Treasury'", `"amount"=5`, `"apiToken"=***`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("message shows a secret: %q", msg)
	}
	schema, _ := json.Marshal(forms[0].RequestedSchema)
	for _, want := range []string{`"justification":{`, `"ticket":{`, `"required":["justification","ticket"]`} {
		if !strings.Contains(string(schema), want) {
			t.Errorf("requestedSchema %s lacks %s", schema, want)
		}
	}
	if got := h.up.args.Load().(json.RawMessage); string(got) != args {
		t.Fatalf("forwarded %s, want the arguments as sent", got)
	}
	if recs := h.audit.call(t); !slices.Equal(recs[0].Elicited, []string{"justification", "ticket"}) {
		t.Fatalf("audit elicited = %q", recs[0].Elicited)
	}

	if _, err := h.next(t.Context(), &proxy.Call{Tool: "pay", Arguments: json.RawMessage(args), Elicit: u.elicit}); err != nil {
		t.Fatal(err)
	}
	if len(u.forms()) != 1 || h.up.calls.Load() != 2 {
		t.Fatalf("on a cached grant: asked %d times, forwarded %d", len(u.forms()), h.up.calls.Load())
	}
	if rec := h.audit.call(t)[0]; len(rec.Elicited) != 0 {
		t.Fatalf("cached call's record says elicited %q", rec.Elicited)
	}
}

// Whatever keeps the user from answering yes refuses the call with a
// sentence, before anything is requested or run.
func TestUnansweredFormRefuses(t *testing.T) {
	tests := []struct {
		name, tool string
		answer     func(mcp.ElicitationParams) (*mcp.ElicitationResult, error)
		want       string
	}{
		{"declined", "pay", answerWith(mcp.ElicitationResponseActionDecline), "declined"},
		{"cancelled", "pay", answerWith(mcp.ElicitationResponseActionCancel), "cancelled"},
		{"blank", "pay", accept(map[string]any{"justification": "  ", "ticket": "7"}), "gave no justification"},
		{"not a string", "pay", accept(map[string]any{"justification": 7, "ticket": "7"}), "gave no justification"},
		{"too long", "pay", accept(map[string]any{"justification": "x", "ticket": strings.Repeat("7", 101)}), "longer than 100"},
		{"client error", "pay", func(mcp.ElicitationParams) (*mcp.ElicitationResult, error) {
			return nil, &proxy.RPCError{Code: -32601, Message: "no"}
		}, "asking failed"},
		{"confirm declined", "wire", answerWith(mcp.ElicitationResponseActionDecline), "declined to confirm"},
		{"confirm unticked", "wire", accept(map[string]any{"confirm": false}), "did not confirm"},
		{"confirm missing", "wire", accept(nil), "did not confirm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, askPolicy)
			u := &user{answer: tc.answer}
			res, err := h.next(t.Context(), &proxy.Call{Tool: tc.tool, Arguments: json.RawMessage(`{"amount":5}`), Elicit: u.elicit})
			if err != nil {
				t.Fatal(err)
			}
			if text, isErr := toolError(t, res); !isErr || !strings.Contains(text, tc.want) || !strings.HasPrefix(text, "refused: ") {
				t.Fatalf("answer = %q, want a refusal saying %q", text, tc.want)
			}
			if h.up.calls.Load() != 0 || h.act.activations.Load() != 0 {
				t.Fatal("refused call was forwarded or activated")
			}
			if tc.tool == "wire" && h.act.resolved.Load() != 0 {
				t.Fatal("a declined confirmation looked the role up")
			}
			if rec := h.audit.call(t)[0]; rec.Outcome != audit.OutcomeRefused {
				t.Fatalf("audit = %+v", rec)
			}
		})
	}
}

// confirm: true asks for every call, cached grant or not, in one form with
// the values the rule requires; without elicitation the call is refused.
func TestConfirmEveryCall(t *testing.T) {
	h := newHarness(t, askPolicy)
	u := &user{answer: accept(map[string]any{"confirm": true, "justification": "month end"})}
	done := h.callAsync(t.Context(), &proxy.Call{Tool: "wire_noted", Upstream: "bank", Arguments: json.RawMessage(`{"to":"x"}`), Elicit: u.elicit})
	req := h.grant(t)
	<-done
	if !strings.HasSuffix(req.Justification, `reason given: "month end"`) {
		t.Fatalf("justification = %q", req.Justification)
	}
	if f := u.forms(); len(f) != 1 || !strings.HasPrefix(f[0].Message, "Confirm this call: tool wire_noted on upstream bank") || !strings.Contains(f[0].Message, `"to"="x"`) {
		t.Fatalf("forms = %+v", f)
	}
	if rec := h.audit.call(t)[0]; !slices.Equal(rec.Elicited, []string{"confirm", "justification"}) {
		t.Fatalf("elicited = %q", rec.Elicited)
	}
	// The grant is cached (wire shares the role): still asked, per call.
	for range 2 {
		if _, err := h.next(t.Context(), &proxy.Call{Tool: "wire", Arguments: json.RawMessage(`{"to":"y"}`), Elicit: u.elicit}); err != nil {
			t.Fatal(err)
		}
	}
	if len(u.forms()) != 3 || h.up.calls.Load() != 3 || h.act.activations.Load() != 1 {
		t.Fatalf("asked %d, forwarded %d, activated %d; want 3, 3, 1", len(u.forms()), h.up.calls.Load(), h.act.activations.Load())
	}
	if rec := h.audit.call(t)[0]; !slices.Equal(rec.Elicited, []string{"confirm"}) {
		t.Fatalf("elicited = %q", rec.Elicited)
	}

	res, err := h.next(t.Context(), &proxy.Call{Tool: "wire", Arguments: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	if text, isErr := toolError(t, res); !isErr || !strings.Contains(text, "cannot ask its user") {
		t.Fatalf("without elicitation: %q", text)
	}
	if h.up.calls.Load() != 3 {
		t.Fatal("a confirm rule forwarded a call nobody confirmed")
	}
}

// A client that cannot ask: the values come from the arguments, which the
// tool never sees unless it declares them itself, and the record's digest
// is of what the tool gets.
func TestRequiredValuesFromArgumentsAreNotForwarded(t *testing.T) {
	tests := []struct {
		name, tool, args string
		declared         []string
		forwarded        string
		refused          string
	}{
		{"taken out", "pay", `{"amount": 5, "Justification": "invoice 77", "ticket": "CHG-9"}`, nil, `{"amount":5}`, ""},
		{"declared by the tool", "pay", `{"amount":5,"justification":"invoice 77","ticket":"CHG-9"}`, []string{"Ticket"}, `{"amount":5,"ticket":"CHG-9"}`, ""},
		{"missing", "pay", `{"amount":5,"ticket":"CHG-9"}`, nil, "", "needs a justification"},
		{"the rule hangs on it", "noted", `{"justification":"ok go"}`, nil, "", "depends on the justification argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, askPolicy)
			done := h.callAsync(t.Context(), &proxy.Call{Tool: tc.tool, Arguments: json.RawMessage(tc.args), Declared: tc.declared})
			if tc.refused != "" {
				ans := <-done
				if text, isErr := toolError(t, ans.res); !isErr || !strings.Contains(text, tc.refused) {
					t.Fatalf("answer = %q, want a refusal saying %q", text, tc.refused)
				}
				if h.up.calls.Load() != 0 || h.act.activations.Load() != 0 {
					t.Fatal("refused call was forwarded or activated")
				}
				return
			}
			req := h.grant(t)
			<-done
			if !strings.HasSuffix(req.Justification, `reason given: "invoice 77"`) || req.TicketNumber != "CHG-9" {
				t.Fatalf("PIM request = %+v", req)
			}
			if got := string(h.up.args.Load().(json.RawMessage)); got != tc.forwarded {
				t.Fatalf("forwarded %s, want %s", got, tc.forwarded)
			}
			_, sha, _ := audit.ArgsDigest(json.RawMessage(tc.forwarded))
			if rec := h.audit.call(t)[0]; rec.ArgsSHA256 != sha || len(rec.Elicited) != 0 {
				t.Fatalf("audit = %+v, want the digest of the forwarded arguments and nothing elicited", rec)
			}
		})
	}
}

// Asks tells tools/list which arguments to add for clients that cannot ask.
func TestAsks(t *testing.T) {
	h := newHarness(t, askPolicy)
	for tool, want := range map[string][]string{"pay": {"justification", "ticket"}, "wire": nil, "noted": {"justification"}, "other": nil} {
		var got []string
		for _, a := range h.gate.Asks(tool) {
			got = append(got, a.Name)
			if !strings.HasSuffix(a.Description, ArgDescription) {
				t.Errorf("%s: description %q", tool, a.Description)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("Asks(%s) = %q, want %q", tool, got, want)
		}
	}
}
