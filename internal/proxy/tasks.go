package proxy

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
)

// Tasks (MCP 2025-11-25, experimental): a client that sends tools/call
// with params.task for a tool listed with execution.taskSupport gets a task
// at once; the call runs on in the background, through the same pipeline
// (middleware, audit, upstream) as a plain call, and the client polls
// tasks/get, fetches tasks/result and may tasks/cancel. A task belongs to
// the session that created it: another session is told it does not exist.

const (
	// DefaultTaskTTL is how long a task lives from its creation when the
	// client asks for no ttl; a call under a task is answered before then.
	DefaultTaskTTL = time.Hour
	minTaskTTL     = time.Minute
	maxTaskTTL     = 24 * time.Hour
	// maxTasksPerSession bounds one session's tasks, finished ones
	// included until they expire or make room for new ones.
	maxTasksPerSession = 64
	// taskPollInterval is the polling interval suggested to clients.
	taskPollInterval = 2 * time.Second
	// acceptedMessage is a task's status until the call reports progress.
	acceptedMessage = "Accepted: mcp-gate is deciding this call."
)

// errTaskCancelled is a task call's context cause after tasks/cancel: the
// user's choice, not a client's clock.
var errTaskCancelled = &CancelledError{Reason: "the client cancelled the task (tasks/cancel)"}

// task is one call running in the background for its owner.
type task struct {
	id      string
	owner   string // the session that created it
	created time.Time
	ttl     time.Duration
	cancel  context.CancelCauseFunc
	done    chan struct{} // closed when the task reaches a terminal status

	mu      sync.Mutex
	status  mcp.TaskStatus
	message string
	updated time.Time
	result  Result // completed
	err     error  // failed
}

func (t *task) terminal() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status.IsTerminal()
}

// view is the task as MCP shows it.
func (t *task) view() mcp.Task {
	t.mu.Lock()
	defer t.mu.Unlock()
	ttl, poll := t.ttl.Milliseconds(), taskPollInterval.Milliseconds()
	return mcp.Task{
		TaskId:        t.id,
		Status:        t.status,
		StatusMessage: t.message,
		CreatedAt:     t.created.UTC().Format(time.RFC3339),
		LastUpdatedAt: t.updated.UTC().Format(time.RFC3339),
		TTL:           &ttl,
		PollInterval:  &poll,
	}
}

// taskStore holds every session's tasks.
type taskStore struct {
	clock Clock
	mu    sync.Mutex
	tasks map[string]*task
}

func newTaskStore(clock Clock) *taskStore {
	return &taskStore{clock: clock, tasks: map[string]*task{}}
}

// errTooManyTasks answers a task-augmented call of a session that has as
// many tasks as it may.
var errTooManyTasks = &RPCError{Code: mcp.INVALID_REQUEST, Message: fmt.Sprintf(
	"too many tasks: this session has %d still running; wait for one to finish or cancel one (tasks/cancel)", maxTasksPerSession)}

// add registers a new working task for owner, making room by forgetting
// the owner's expired tasks and then its oldest finished one.
func (s *taskStore) add(owner string, ttl time.Duration, cancel context.CancelCauseFunc) (*task, error) {
	now := s.clock.Now()
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	t := &task{id: hex.EncodeToString(id[:]), owner: owner, created: now, ttl: ttl, cancel: cancel,
		done: make(chan struct{}), status: mcp.TaskStatusWorking, message: acceptedMessage, updated: now}

	s.mu.Lock()
	defer s.mu.Unlock()
	var mine []*task
	for id, o := range s.tasks {
		if o.owner != owner {
			continue
		}
		if o.terminal() && !now.Before(o.created.Add(o.ttl)) {
			delete(s.tasks, id)
			continue
		}
		mine = append(mine, o)
	}
	if len(mine) >= maxTasksPerSession {
		finished := slices.DeleteFunc(mine, func(o *task) bool { return !o.terminal() })
		if len(finished) == 0 {
			return nil, errTooManyTasks
		}
		oldest := slices.MinFunc(finished, func(a, b *task) int { return a.created.Compare(b.created) })
		delete(s.tasks, oldest.id)
	}
	s.tasks[t.id] = t
	return t, nil
}

// get finds owner's task id; another owner's task is not found, and so is
// a finished task past its ttl.
func (s *taskStore) get(owner, id string) (*task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok || t.owner != owner {
		return nil, false
	}
	if t.terminal() && !s.clock.Now().Before(t.created.Add(t.ttl)) {
		delete(s.tasks, id)
		return nil, false
	}
	return t, true
}

// list is owner's tasks, oldest first.
func (s *taskStore) list(owner string) []*task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*task
	for _, t := range s.tasks {
		if t.owner == owner {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, func(a, b *task) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return cmp.Compare(a.id, b.id)
	})
	return out
}

// drop forgets owner's tasks once its session ended; their calls end with
// the session.
func (s *taskStore) drop(owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tasks {
		if t.owner == owner {
			delete(s.tasks, id)
		}
	}
}

// setMessage updates a working task's status message.
func (s *taskStore) setMessage(t *task, message string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status.IsTerminal() {
		return
	}
	t.message, t.updated = message, s.clock.Now()
}

// finish moves t to its terminal status: completed with res, failed with
// err, or left cancelled if tasks/cancel came first.
func (s *taskStore) finish(t *task, res Result, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status.IsTerminal() {
		return
	}
	t.updated = s.clock.Now()
	if err != nil {
		t.status, t.err, t.message = mcp.TaskStatusFailed, err, err.Error()
	} else {
		t.status, t.result, t.message = mcp.TaskStatusCompleted, res, ""
	}
	close(t.done)
}

// cancelTask marks t cancelled and cancels its call; false when t had
// already ended.
func (s *taskStore) cancelTask(t *task) bool {
	t.mu.Lock()
	if t.status.IsTerminal() {
		t.mu.Unlock()
		return false
	}
	t.status, t.message, t.updated = mcp.TaskStatusCancelled, "Cancelled by the client.", s.clock.Now()
	close(t.done)
	t.mu.Unlock()
	t.cancel(errTaskCancelled)
	return true
}

// taskRequest is params.task of a task-augmented request.
type taskRequest struct {
	TTL *int64 `json:"ttl"`
}

// taskTTL reads params.task: the client's ttl in milliseconds, bounded.
func taskTTL(raw json.RawMessage) (time.Duration, error) {
	var tr taskRequest
	if err := json.Unmarshal(raw, &tr); err != nil {
		return 0, &RPCError{Code: mcp.INVALID_PARAMS, Message: "params.task must be an object, such as {\"ttl\": 60000}"}
	}
	if tr.TTL == nil {
		return DefaultTaskTTL, nil
	}
	ms := max(*tr.TTL, 0)
	if ms > maxTaskTTL.Milliseconds() {
		return maxTaskTTL, nil
	}
	return max(time.Duration(ms)*time.Millisecond, minTaskTTL), nil
}

// taskWait is how long a task's call may wait for approval: most of the
// task's life, so that its answer is there before the task expires.
func taskWait(ttl time.Duration) time.Duration { return ttl - ttl/10 }

// wantsTask reports whether tools/call params ask for a task the proxy
// may run: params.task is present and the request is of the initialize
// handshake's generation (2026-07-28 has no params.task).
func wantsTask(cp *toolCallParams) bool {
	return len(cp.Task) > 0 && string(cp.Task) != "null" && cp.m.ProtocolVersion == ""
}

// taskable reports whether the tool cp calls is listed as supporting
// tasks, waiting for upstreams still starting when the name is not yet
// known.
func (p *Proxy) taskable(ctx context.Context, cp *toolCallParams) bool {
	r, ok := p.routes.Load().tools[cp.Name]
	if !ok && p.waitStarted(ctx, p.opts.ListWait) {
		r = p.routes.Load().tools[cp.Name]
	}
	return r.taskable
}

// startTask starts c as a task of owner under base, which must end with
// the session, and returns the CreateTaskResult. spawn runs the call.
func (p *Proxy) startTask(base context.Context, owner string, c *Call, rawTask json.RawMessage, spawn func(func())) (Result, error) {
	ttl, err := taskTTL(rawTask)
	if err != nil {
		return nil, err
	}
	live, ok := p.session(owner)
	if !ok {
		return nil, errors.New("the client's session ended")
	}
	ctx, cancel := context.WithCancelCause(base)
	t, err := p.tasks.add(owner, ttl, cancel)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	relay := c.relay
	c.Progress = func(_ context.Context, progress float64, message string) {
		p.tasks.setMessage(t, message)
		if relay != nil {
			relay(progress, nil, message)
		}
	}
	c.Wait = taskWait(ttl)
	created, _ := json.Marshal(mcp.CreateTaskResult{Task: t.view()})
	spawn(func() {
		ctx, stop := live.bind(ctx)
		defer stop()
		res, err := p.call(ctx, c)
		p.tasks.finish(t, res, err)
		cancel(nil)
	})
	return created, nil
}

// isTaskMethod reports whether method is one of the tasks/ requests the
// fronts answer from the proxy's tasks.
func isTaskMethod(method string) bool {
	switch mcp.MCPMethod(method) {
	case mcp.MethodTasksGet, mcp.MethodTasksResult, mcp.MethodTasksCancel, mcp.MethodTasksList:
		return true
	}
	return false
}

// taskMethod answers tasks/get, tasks/result, tasks/cancel and tasks/list
// for owner with a response line; ok is false for any other method.
func (p *Proxy) taskMethod(ctx context.Context, owner, method string, id, params json.RawMessage) (line []byte, ok bool) {
	switch mcp.MCPMethod(method) {
	case mcp.MethodTasksList:
		var out mcp.ListTasksResult
		out.Tasks = []mcp.Task{}
		for _, t := range p.tasks.list(owner) {
			out.Tasks = append(out.Tasks, t.view())
		}
		b, _ := json.Marshal(out)
		return resultLine(id, b), true
	case mcp.MethodTasksGet, mcp.MethodTasksResult, mcp.MethodTasksCancel:
	default:
		return nil, false
	}
	var tp struct {
		TaskID string `json:"taskId"`
	}
	if json.Unmarshal(params, &tp) != nil || tp.TaskID == "" {
		return rpcErrorLine(id, mcp.INVALID_PARAMS, "params.taskId is required", nil), true
	}
	t, found := p.tasks.get(owner, tp.TaskID)
	if !found {
		return rpcErrorLine(id, mcp.INVALID_PARAMS, "Failed to retrieve task: Task not found", nil), true
	}
	switch mcp.MCPMethod(method) {
	case mcp.MethodTasksCancel:
		if !p.tasks.cancelTask(t) {
			return rpcErrorLine(id, mcp.INVALID_PARAMS, fmt.Sprintf("Cannot cancel task: it is already %s", t.view().Status), nil), true
		}
		fallthrough
	case mcp.MethodTasksGet:
		b, _ := json.Marshal(t.view())
		return resultLine(id, b), true
	}
	select { // tasks/result waits for the task to end
	case <-t.done:
	case <-ctx.Done():
		return rpcErrorLine(id, mcp.REQUEST_INTERRUPTED, "Request cancelled", nil), true
	}
	t.mu.Lock()
	status, res, err := t.status, t.result, t.err
	t.mu.Unlock()
	switch {
	case status == mcp.TaskStatusCancelled:
		return rpcErrorLine(id, mcp.INTERNAL_ERROR, "Task cancelled: the client cancelled it (tasks/cancel)", nil), true
	case err != nil:
		return errorLine(id, err), true
	}
	return resultLine(id, relatedTask(res, t.id)), true
}

// relatedTask adds the related-task _meta key that tasks/result must carry
// to a CallToolResult.
func relatedTask(res Result, taskID string) Result {
	var fields map[string]json.RawMessage
	if json.Unmarshal(res, &fields) != nil || fields == nil {
		return res
	}
	meta := map[string]json.RawMessage{}
	if m, ok := fields["_meta"]; ok && json.Unmarshal(m, &meta) != nil {
		meta = map[string]json.RawMessage{}
	}
	meta[mcp.RelatedTaskMetaKey], _ = json.Marshal(mcp.RelatedTaskMeta(taskID))
	fields["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(fields)
	if err != nil {
		return res
	}
	return out
}
