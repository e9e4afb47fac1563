package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

// heldCall is a call the holding middleware below has in hand.
type heldCall struct {
	c   *Call
	ctx context.Context
}

// taskProxy is a proxy whose filter offers echo as a task and whose
// middleware holds every echo call until released: the gate's wait for
// approval, in miniature.
func taskProxy(t *testing.T, clk Clock) (p *Proxy, held <-chan heldCall, release chan<- struct{}) {
	t.Helper()
	url, _ := startUpstream(t, "up")
	h, r := make(chan heldCall, 128), make(chan struct{}, 128)
	hold := func(next CallFunc) CallFunc {
		return func(ctx context.Context, c *Call) (Result, error) {
			if c.Tool == "echo" {
				h <- heldCall{c, ctx}
				select {
				case <-r:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return next(ctx, c)
		}
	}
	filter := func(tool *mcp.Tool) bool {
		if tool.Name == "echo" {
			tool.Execution = &mcp.ToolExecution{TaskSupport: mcp.TaskSupportOptional}
		}
		return true
	}
	return newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}, Middleware: hold, ToolFilter: filter, Clock: clk}), h, r
}

// taskSession is one raw stdio client of p, initialized with 2025-11-25.
type taskSession struct {
	t    *testing.T
	send func(string)
	next func() map[string]any
	id   int
}

func newTaskSession(t *testing.T, p *Proxy) *taskSession {
	t.Helper()
	send, next := rawStdio(t, p)
	s := &taskSession{t: t, send: send, next: next}
	init := s.request("initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`)
	caps, _ := json.Marshal(init["result"].(map[string]any)["capabilities"])
	if !strings.Contains(string(caps), `"tasks":{"cancel":{},"list":{},"requests":{"tools":{"call":{}}}}`) {
		t.Errorf("initialize offers no tasks for tools/call: %s", caps)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return s
}

// request sends method with params and returns the answer.
func (s *taskSession) request(method, params string) map[string]any {
	s.t.Helper()
	s.id++
	s.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, s.id, method, params))
	m := s.next()
	for m["id"] == nil && m["method"] != nil { // a notification
		m = s.next()
	}
	if m["id"] != float64(s.id) {
		s.t.Fatalf("answer %v is not to request %d", m, s.id)
	}
	return m
}

// result is the result of a request that must succeed.
func (s *taskSession) result(method, params string) map[string]any {
	s.t.Helper()
	m := s.request(method, params)
	res, ok := m["result"].(map[string]any)
	if !ok {
		s.t.Fatalf("%s %s: %v", method, params, m)
	}
	return res
}

// failure is the error message of a request that must fail.
func (s *taskSession) failure(method, params string) string {
	s.t.Helper()
	m := s.request(method, params)
	e, ok := m["error"].(map[string]any)
	if !ok {
		s.t.Fatalf("%s %s succeeded: %v", method, params, m)
	}
	return e["message"].(string)
}

func (s *taskSession) startTask(args string) string {
	s.t.Helper()
	res := s.result("tools/call", `{"name":"echo","arguments":`+args+`,"task":{"ttl":120000}}`)
	task, _ := res["task"].(map[string]any)
	if task == nil || task["status"] != "working" || task["ttl"] != 120000.0 || task["pollInterval"] == nil {
		s.t.Fatalf("tools/call with params.task returned %v, want a working task", res)
	}
	return task["taskId"].(string)
}

func taskParam(id string) string { return `{"taskId":"` + id + `"}` }

// A task-augmented call returns a working task at once; the call runs on
// with the task's lifetime as its wait, its progress is the task's status
// message, and tasks/result gives the upstream's result.
func TestTaskRunsTheCallInTheBackground(t *testing.T) {
	p, held, release := taskProxy(t, nil)
	s := newTaskSession(t, p)

	tools := s.result("tools/list", `{}`)["tools"].([]any)
	for _, tl := range tools {
		tool := tl.(map[string]any)
		ex, _ := json.Marshal(tool["execution"])
		if want := tool["name"] == "echo"; want != strings.Contains(string(ex), `"optional"`) {
			t.Errorf("tool %v lists execution %s", tool["name"], ex)
		}
	}

	id := s.startTask(`{"text":"hi"}`)
	h := <-held
	if want := 108 * time.Second; h.c.Wait != want {
		t.Errorf("the call under a 120 s task waits %v, want %v", h.c.Wait, want)
	}
	if got := s.result("tasks/get", taskParam(id)); got["status"] != "working" || got["statusMessage"] != acceptedMessage {
		t.Errorf("tasks/get before any progress: %v", got)
	}
	h.c.Progress(h.ctx, 1, "Waiting for approval (request R1).")
	if got := s.result("tasks/get", taskParam(id)); got["statusMessage"] != "Waiting for approval (request R1)." {
		t.Errorf("tasks/get after progress: %v", got)
	}
	if got := s.result("tasks/list", `{}`)["tasks"].([]any); len(got) != 1 || got[0].(map[string]any)["taskId"] != id {
		t.Errorf("tasks/list = %v", got)
	}

	release <- struct{}{}
	res := s.result("tasks/result", taskParam(id))
	content, _ := json.Marshal(res["content"])
	meta, _ := json.Marshal(res["_meta"])
	if !strings.Contains(string(content), `"hi"`) || !strings.Contains(string(meta), `"io.modelcontextprotocol/related-task":{"taskId":"`+id+`"}`) {
		t.Errorf("tasks/result = %v", res)
	}
	if got := s.result("tasks/get", taskParam(id)); got["status"] != "completed" {
		t.Errorf("tasks/get after the result: %v", got)
	}
	if msg := s.failure("tasks/cancel", taskParam(id)); !strings.Contains(msg, "already completed") {
		t.Errorf("tasks/cancel of a completed task: %q", msg)
	}
}

// tasks/cancel is the user's choice: the call's context ends with a cause
// that does not read as the client's clock running out, so the gate
// withdraws the activation.
func TestTaskCancelIsTheUsersChoice(t *testing.T) {
	p, held, _ := taskProxy(t, nil)
	s := newTaskSession(t, p)
	id := s.startTask(`{"text":"hi"}`)
	h := <-held
	if got := s.result("tasks/cancel", taskParam(id)); got["status"] != "cancelled" {
		t.Errorf("tasks/cancel = %v", got)
	}
	<-h.ctx.Done()
	var ce *CancelledError
	if cause := context.Cause(h.ctx); !errors.As(cause, &ce) || ClientTimedOut(h.ctx) {
		t.Errorf("the cancelled task's call ended with %v, want a user's cancel", cause)
	}
	if msg := s.failure("tasks/result", taskParam(id)); !strings.Contains(msg, "cancelled") {
		t.Errorf("tasks/result of a cancelled task: %q", msg)
	}
	if got := s.result("tasks/get", taskParam(id)); got["status"] != "cancelled" {
		t.Errorf("tasks/get after cancel: %v", got)
	}
}

// A task belongs to the session that created it: another session cannot
// see, wait on or cancel it.
func TestTasksBelongToTheirSession(t *testing.T) {
	p, held, release := taskProxy(t, nil)
	owner, other := newTaskSession(t, p), newTaskSession(t, p)
	id := owner.startTask(`{"text":"mine"}`)
	<-held
	for _, method := range []string{"tasks/get", "tasks/result", "tasks/cancel"} {
		if msg := other.failure(method, taskParam(id)); !strings.Contains(msg, "not found") {
			t.Errorf("another session's %s: %q, want not found", method, msg)
		}
	}
	if got := other.result("tasks/list", `{}`)["tasks"].([]any); len(got) != 0 {
		t.Errorf("another session lists %v", got)
	}
	if got := owner.result("tasks/get", taskParam(id)); got["status"] != "working" {
		t.Errorf("the owner's task after the other session tried it: %v", got)
	}
	release <- struct{}{}
	if res := owner.result("tasks/result", taskParam(id)); res["isError"] == true {
		t.Errorf("the owner's result: %v", res)
	}
}

// A session holds at most maxTasksPerSession tasks: one more is refused
// while they all run; a finished one makes room.
func TestTasksAreBounded(t *testing.T) {
	p, held, _ := taskProxy(t, nil)
	s := newTaskSession(t, p)
	var first string
	for i := range maxTasksPerSession {
		id := s.startTask(fmt.Sprintf(`{"text":"%d"}`, i))
		if i == 0 {
			first = id
		}
		<-held
	}
	if msg := s.failure("tools/call", `{"name":"echo","arguments":{"text":"x"},"task":{}}`); !strings.Contains(msg, "too many tasks") {
		t.Fatalf("one task too many: %q", msg)
	}
	s.result("tasks/cancel", taskParam(first)) // a finished task, kept until room is needed
	s.startTask(`{"text":"room"}`)
	<-held
	if n := len(s.result("tasks/list", `{}`)["tasks"].([]any)); n != maxTasksPerSession {
		t.Errorf("the session holds %d tasks, want %d", n, maxTasksPerSession)
	}
}

// A finished task is forgotten once its ttl has passed.
func TestFinishedTaskExpires(t *testing.T) {
	fake := clock.NewFake(time.Now())
	p, held, release := taskProxy(t, fake)
	s := newTaskSession(t, p)
	id := s.startTask(`{"text":"hi"}`)
	<-held
	release <- struct{}{}
	s.result("tasks/result", taskParam(id))
	fake.Advance(2 * time.Minute)
	if msg := s.failure("tasks/get", taskParam(id)); !strings.Contains(msg, "not found") {
		t.Errorf("tasks/get past the ttl: %q", msg)
	}
}

// params.task on a tool not offered as a task is served as a plain call.
func TestTaskParamsWithoutATaskAreAPlainCall(t *testing.T) {
	p, _, _ := taskProxy(t, nil)
	s := newTaskSession(t, p)
	for _, params := range []string{
		`{"name":"sleep","arguments":{"ms":0},"task":{}}`,
		`{"name":"sleep","arguments":{"ms":0},"task":null}`,
	} {
		res := s.result("tools/call", params)
		if _, isTask := res["task"]; isTask || res["content"] == nil {
			t.Errorf("%s: %v, want a plain result", params, res)
		}
	}
}

func TestTaskTTL(t *testing.T) {
	for _, tt := range []struct {
		task string
		want time.Duration
		bad  bool
	}{
		{`{}`, DefaultTaskTTL, false},
		{`{"ttl":null}`, DefaultTaskTTL, false},
		{`{"ttl":600000}`, 10 * time.Minute, false},
		{`{"ttl":1}`, minTaskTTL, false},
		{`{"ttl":-5}`, minTaskTTL, false},
		{`{"ttl":9223372036854775807}`, maxTaskTTL, false},
		{`{"ttl":"1h"}`, 0, true},
		{`[]`, 0, true},
	} {
		got, err := taskTTL(json.RawMessage(tt.task))
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("taskTTL(%s) = %v, %v; want %v (error %v)", tt.task, got, err, tt.want, tt.bad)
		}
	}
}

// httpTaskSession is one raw Streamable HTTP session of a proxy.
type httpTaskSession struct {
	t   *testing.T
	url string
	sid string
	id  int
}

func newHTTPTaskSession(t *testing.T, url string) *httpTaskSession {
	t.Helper()
	s := &httpTaskSession{t: t, url: url}
	s.post(`{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`)
	if s.sid == "" {
		t.Fatal("no session id")
	}
	s.post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return s
}

func (s *httpTaskSession) post(body string) map[string]any {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.sid != "" {
		req.Header.Set(server.HeaderKeySessionID, s.sid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	if sid := resp.Header.Get(server.HeaderKeySessionID); sid != "" {
		s.sid = sid
	}
	b, _ := io.ReadAll(resp.Body)
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if data, ok := bytes.CutPrefix(bytes.TrimSpace(b), []byte("event: message\ndata: ")); ok {
		b = data
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		s.t.Fatalf("answer %q: %v", b, err)
	}
	return m
}

func (s *httpTaskSession) request(method, params string) map[string]any {
	s.t.Helper()
	s.id++
	return s.post(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, s.id, method, params))
}

// Over Streamable HTTP as on stdio: the task outlives the request that
// created it, belongs to its session, and gives the upstream's result.
func TestTaskOverStreamableHTTP(t *testing.T) {
	p, held, release := taskProxy(t, nil)
	ts := httptest.NewServer(p.HTTPHandler())
	t.Cleanup(ts.Close)
	owner, other := newHTTPTaskSession(t, ts.URL+StreamablePath), newHTTPTaskSession(t, ts.URL+StreamablePath)

	created := owner.request("tools/call", `{"name":"echo","arguments":{"text":"over http"},"task":{}}`)
	task, _ := created["result"].(map[string]any)["task"].(map[string]any)
	if task == nil || task["status"] != "working" || task["ttl"] != float64(DefaultTaskTTL.Milliseconds()) {
		t.Fatalf("tools/call with params.task: %v", created)
	}
	id := task["taskId"].(string)
	<-held // the call goes on after its request was answered
	if m := other.request("tasks/get", taskParam(id)); m["error"] == nil {
		t.Errorf("another session got the task: %v", m)
	}
	if m := owner.request("tasks/get", taskParam(id)); m["result"].(map[string]any)["status"] != "working" {
		t.Errorf("tasks/get: %v", m)
	}
	release <- struct{}{}
	res := owner.request("tasks/result", taskParam(id))
	if b, _ := json.Marshal(res["result"]); !strings.Contains(string(b), "over http") {
		t.Errorf("tasks/result: %v", res)
	}
}
