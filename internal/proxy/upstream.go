package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// UpstreamConfig says how to reach one upstream MCP server: a command to run
// (stdio) or a URL (Streamable HTTP, or the legacy SSE transport when the
// path ends in /sse).
type UpstreamConfig struct {
	Name    string
	Command []string          // stdio: argv
	Env     map[string]string // extra environment for the child; values may contain ${VAR}
	URL     string            // Streamable HTTP or SSE endpoint
	Headers map[string]string // values may contain ${VAR}, expanded from the environment at connect time
	// Timeout bounds one tool call at the upstream, from the moment it is
	// forwarded (a wait for approval does not count); default
	// DefaultCallTimeout.
	Timeout time.Duration
}

// DefaultCallTimeout is how long an upstream may take to answer a tool call
// unless its UpstreamConfig says otherwise.
const DefaultCallTimeout = 5 * time.Minute

// TimeoutError answers a call its upstream did not answer in time; the
// call is cancelled at the upstream.
type TimeoutError struct {
	Upstream string
	Limit    time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("upstream %s did not answer within %s (its timeout; set upstreams.%s.timeout in the policy to change it): the call was cancelled there", e.Upstream, e.Limit, e.Upstream)
}

// Clock is the time the proxy needs: restart backoff waits.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

// idBase keeps the ids of forwarded calls apart from the small ids mcp-go's
// client numbers its own requests with on the same connection.
const idBase = 1 << 40

// progressGrace is how long progress for a finished call is still relayed.
const progressGrace = 2 * time.Second

// stableAfter is how long a connection must live before a later crash
// restarts it without the accumulated backoff.
const stableAfter = 30 * time.Second

// link is one live connection to an upstream and what it offered when it
// was last listed. A refresh replaces the whole link value.
type link struct {
	conn         conn
	client       *client.Client
	caps         mcp.ServerCapabilities
	instructions string
	tools        []mcp.Tool
	resources    []mcp.Resource
	templates    []mcp.ResourceTemplate
	prompts      []mcp.Prompt
}

// upstream supervises the connection to one upstream: it connects, lists,
// relays notifications, and restarts a lost connection with backoff.
type upstream struct {
	cfg        UpstreamConfig
	prefix     string // "NAME__" when there are several upstreams
	log        *slog.Logger
	stderr     io.Writer
	clock      Clock
	grace      time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
	timeout    time.Duration // per tool call
	clientInfo mcp.Implementation
	changed    func()                                                     // what it offers changed
	relay      func(method string, params json.RawMessage, from *callers) // notifications for clients
	// ask answers the upstream's requests (relay.go); caps is what the
	// gate declares to it as its client.
	ask     func(ctx context.Context, u *upstream, method string, params json.RawMessage) (json.RawMessage, error)
	caps    func(context.Context) mcp.ClientCapabilities
	callers callers // calls in flight, by the client session behind them
	// logCallers is callers with each call kept progressGrace longer: an
	// upstream may send a call's log message after its result, and that
	// message must still be told to be that call's (relay).
	logCallers callers
	asks       sync.Map      // the upstream's requests being relayed: id key -> context.CancelCauseFunc
	relaying   chan struct{} // one token per request being relayed, at most maxRelayed

	live     atomic.Pointer[link] // nil while down
	listed   atomic.Pointer[link] // the last successful listing, kept while down
	ids      atomic.Int64
	progress sync.Map // progress token (our request id) -> progressFunc

	refresh   chan struct{} // a list_changed asks the supervisor to list again
	ready     chan struct{} // closed after the first connection attempt
	readyOnce sync.Once

	mu      sync.Mutex
	lastErr error
}

func (u *upstream) markReady() { u.readyOnce.Do(func() { close(u.ready) }) }

// run keeps the upstream connected until ctx ends.
func (u *upstream) run(ctx context.Context) {
	wait := u.minBackoff
	for {
		l, err := u.connect(ctx)
		if err == nil {
			started := u.clock.Now()
			u.setLive(l)
			err = u.serve(ctx, l)
			if u.clock.Now().Sub(started) > stableAfter {
				wait = u.minBackoff
			}
		}
		u.setDown(err)
		if ctx.Err() != nil {
			return
		}
		u.log.Error("upstream unavailable; restarting", "upstream", u.cfg.Name, "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return
		case <-u.clock.After(wait):
		}
		wait = min(2*wait, u.maxBackoff)
	}
}

// serve relists on list_changed until the connection is lost or ctx ends.
func (u *upstream) serve(ctx context.Context, l *link) error {
	for {
		select {
		case <-ctx.Done():
			_ = l.conn.Close()
			return ctx.Err()
		case <-l.conn.closed():
			return l.conn.Err()
		case <-u.refresh:
			next := *l
			if err := u.list(ctx, &next); err != nil {
				if ctx.Err() != nil {
					continue // shutting down: the next turn closes the connection
				}
				u.log.Warn("upstream relist failed", "upstream", u.cfg.Name, "err", err)
				continue
			}
			l = &next
			u.setLive(l)
		}
	}
}

func (u *upstream) setLive(l *link) {
	u.live.Store(l)
	u.listed.Store(l)
	u.mu.Lock()
	u.lastErr = nil
	u.mu.Unlock()
	// Tables first: whoever waits for readiness expects to find the tools.
	u.changed()
	u.markReady()
}

func (u *upstream) setDown(err error) {
	if l := u.live.Swap(nil); l != nil {
		_ = l.conn.Close()
	}
	u.mu.Lock()
	u.lastErr = err
	u.mu.Unlock()
	u.markReady()
}

func (u *upstream) connect(ctx context.Context) (*link, error) {
	var c conn
	var tr transport.Interface
	if len(u.cfg.Command) > 0 {
		env := make([]string, 0, len(u.cfg.Env))
		for k, v := range u.cfg.Env {
			env = append(env, k+"="+os.ExpandEnv(v))
		}
		sort.Strings(env)
		child, err := startChild(u.cfg.Name, u.cfg.Command, env, u.stderr, u.grace, u.onNotify, u.childRequest)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: start %q: %w", u.cfg.Name, u.cfg.Command[0], err)
		}
		c, tr = child, child
	} else {
		headers := make(map[string]string, len(u.cfg.Headers))
		for k, v := range u.cfg.Headers {
			headers[k] = os.ExpandEnv(v)
		}
		hc, err := newHTTPConn(u.cfg.Name, u.cfg.URL, headers, u.log)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", u.cfg.Name, err)
		}
		c, tr = hc, hc.tr
	}
	cl := client.NewClient(tr, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
	if err := cl.Start(ctx); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("upstream %s: %w", u.cfg.Name, err)
	}
	if hc, ok := c.(*httpConn); ok {
		cl.OnNotification(func(n mcp.JSONRPCNotification) {
			params, _ := json.Marshal(n.Params)
			u.onNotify(n.Method, params)
		})
		cl.OnConnectionLost(hc.lost)
		if bt, ok := hc.tr.(transport.BidirectionalInterface); ok {
			bt.SetRequestHandler(u.httpRequests) // after Start, which set mcp-go's
		}
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
	init.Params.ClientInfo = u.clientInfo
	init.Params.Capabilities = u.caps(ctx)
	res, err := cl.Initialize(ctx, init)
	if err != nil {
		_ = c.Close()
		if cerr := c.Err(); cerr != nil && !errors.Is(cerr, errClosed) {
			err = cerr // the process exit says more than the broken pipe
		}
		return nil, fmt.Errorf("upstream %s: initialize: %w", u.cfg.Name, explainHTTP(err))
	}
	l := &link{conn: c, client: cl, caps: res.Capabilities, instructions: res.Instructions}
	if err := u.list(ctx, l); err != nil {
		_ = c.Close()
		return nil, err
	}
	u.log.Info("upstream connected", "upstream", u.cfg.Name, "server", res.ServerInfo.Name,
		"tools", len(l.tools), "resources", len(l.resources), "prompts", len(l.prompts))
	return l, nil
}

// list fetches what the upstream offers, per its capabilities.
func (u *upstream) list(ctx context.Context, l *link) error {
	if l.caps.Tools != nil {
		tools, err := u.listTools(ctx, l.conn)
		if err != nil {
			return fmt.Errorf("upstream %s: tools/list: %w", u.cfg.Name, err)
		}
		l.tools = tools
	}
	if l.caps.Resources != nil {
		res, err := l.client.ListResources(ctx, mcp.ListResourcesRequest{})
		if err != nil {
			return fmt.Errorf("upstream %s: resources/list: %w", u.cfg.Name, err)
		}
		l.resources = res.Resources
		tres, err := l.client.ListResourceTemplates(ctx, mcp.ListResourceTemplatesRequest{})
		if err != nil {
			return fmt.Errorf("upstream %s: resources/templates/list: %w", u.cfg.Name, err)
		}
		l.templates = tres.ResourceTemplates
	}
	if l.caps.Prompts != nil {
		res, err := l.client.ListPrompts(ctx, mcp.ListPromptsRequest{})
		if err != nil {
			return fmt.Errorf("upstream %s: prompts/list: %w", u.cfg.Name, err)
		}
		l.prompts = res.Prompts
	}
	return nil
}

// maxListPages bounds how many pages of tools/list the gate follows: an
// upstream that keeps answering with a new cursor must not hold it forever.
const maxListPages = 1000

// listTools lists the upstream's tools, every page, keeping each tool's
// inputSchema and outputSchema as the upstream sent them: mcp.Tool's own
// schema types know only a handful of JSON Schema keywords and would drop
// the rest ($schema, oneOf, minProperties...) and add "required": [].
func (u *upstream) listTools(ctx context.Context, c conn) ([]mcp.Tool, error) {
	var tools []mcp.Tool
	var cursor string
	for range maxListPages {
		var params json.RawMessage
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		raw, err := c.call(ctx, idBase+u.ids.Add(1), string(mcp.MethodToolsList), params)
		if err != nil {
			return nil, err
		}
		var page struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return nil, fmt.Errorf("unreadable result: %w", err)
		}
		for _, rt := range page.Tools {
			t, err := rawTool(rt)
			if err != nil {
				return nil, err
			}
			tools = append(tools, t)
		}
		if page.NextCursor == "" || page.NextCursor == cursor {
			return tools, nil
		}
		cursor = page.NextCursor
	}
	return nil, fmt.Errorf("more than %d pages", maxListPages)
}

// rawTool decodes one tool definition with its schemas kept raw.
func rawTool(b json.RawMessage) (mcp.Tool, error) {
	var t mcp.Tool
	var schemas struct {
		In  json.RawMessage `json:"inputSchema"`
		Out json.RawMessage `json:"outputSchema"`
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("unreadable tool: %w", err)
	}
	if err := json.Unmarshal(b, &schemas); err != nil {
		return t, fmt.Errorf("tool %q: %w", t.Name, err)
	}
	t.InputSchema, t.OutputSchema = mcp.ToolInputSchema{}, mcp.ToolOutputSchema{}
	if len(schemas.In) == 0 || bytes.Equal(schemas.In, []byte("null")) {
		// The schema is required; an upstream that leaves it out gets the
		// empty object schema, as mcp-go's decoding gave it before.
		schemas.In = json.RawMessage(`{"type":"object"}`)
	}
	t.RawInputSchema = schemas.In
	if len(schemas.Out) > 0 && !bytes.Equal(schemas.Out, []byte("null")) {
		t.RawOutputSchema = schemas.Out
	}
	return t, nil
}

// onNotify handles a notification from the upstream. It runs on the
// connection's reader, so it must not wait on the upstream.
func (u *upstream) onNotify(method string, params json.RawMessage) {
	switch mcp.MCPMethod(method) {
	case mcp.MethodNotificationProgress:
		u.relayProgress(params)
	case mcp.MethodNotificationToolsListChanged, mcp.MethodNotificationResourcesListChanged, mcp.MethodNotificationPromptsListChanged:
		select {
		case u.refresh <- struct{}{}:
		default: // a relist is already due
		}
	case mcp.MethodNotificationCancelled:
		u.cancelRequest(params)
	case mcp.MethodNotificationTasksStatus:
		// Upstream tasks are the gate's own (a task-only tool called for a
		// plain call); no client knows their ids.
	default:
		u.relay(method, params, &u.logCallers)
	}
}

func (u *upstream) relayProgress(params json.RawMessage) {
	var p struct {
		ProgressToken json.RawMessage `json:"progressToken"`
		Progress      float64         `json:"progress"`
		Total         *float64        `json:"total"`
		Message       string          `json:"message"`
	}
	if json.Unmarshal(params, &p) != nil {
		return
	}
	token, err := strconv.ParseInt(string(p.ProgressToken), 10, 64)
	if err != nil {
		return // not one of ours
	}
	if f, ok := u.progress.Load(token); ok {
		f.(progressFunc)(p.Progress, p.Total, p.Message)
	}
}

// errUnavailable wraps why an upstream cannot take a request.
var errUnavailable = errors.New("upstream unavailable")

// get returns the live connection, waiting for the first connection attempt
// if it has not finished yet.
func (u *upstream) get(ctx context.Context) (*link, error) {
	if l := u.live.Load(); l != nil {
		return l, nil
	}
	select {
	case <-u.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if l := u.live.Load(); l != nil {
		return l, nil
	}
	u.mu.Lock()
	err := u.lastErr
	u.mu.Unlock()
	return nil, fmt.Errorf("%w: %s is restarting (%v)", errUnavailable, u.cfg.Name, err)
}

// callTool forwards one tools/call and returns the upstream's raw result.
func (u *upstream) callTool(ctx context.Context, c *Call) (Result, error) {
	l, err := u.get(ctx)
	if err != nil {
		return nil, err
	}
	id := idBase + u.ids.Add(1)
	params, err := callParams(c.UpstreamTool, c.Arguments, c.meta, id, c.relay != nil, c.task)
	if err != nil {
		return nil, &RPCError{Code: mcp.INVALID_PARAMS, Message: err.Error()}
	}
	if c.relay != nil {
		u.progress.Store(id, c.relay)
		// A server may write its last progress notification after its
		// answer (mcp-go's does, from another goroutine); a direct client
		// would still see it, so the token outlives the call briefly.
		defer time.AfterFunc(progressGrace, func() { u.progress.Delete(id) })
	}
	// The upstream's requests during the call go to the call's session.
	k := caller{session: c.SessionID, principal: c.Principal}
	ctx = context.WithValue(ctx, callerKey{}, k)
	defer u.callers.enter(k)()
	defer time.AfterFunc(progressGrace, u.logCallers.enter(k))
	ctx, stop := u.limit(ctx)
	defer stop()
	res, err := l.conn.call(ctx, id, string(mcp.MethodToolsCall), params)
	if err == nil && c.task {
		res, err = u.awaitTask(ctx, l, res)
	}
	if err == nil {
		return res, nil
	}
	if ctx.Err() != nil {
		if !c.task {
			u.cancel(l, id, ctx)
		}
		var te *TimeoutError
		if errors.As(context.Cause(ctx), &te) {
			return nil, &RPCError{Code: mcp.REQUEST_INTERRUPTED, Message: te.Error()}
		}
		return nil, ctx.Err()
	}
	var rpc *RPCError
	if errors.As(err, &rpc) {
		return nil, rpc
	}
	return nil, fmt.Errorf("%w: %s failed during the call (%v); restarting it", errUnavailable, u.cfg.Name, err)
}

// limit returns ctx, cancelled with a *TimeoutError once the upstream's
// timeout has passed on its clock.
func (u *upstream) limit(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	timeout := u.clock.After(u.timeout)
	go func() {
		select {
		case <-timeout:
			cancel(&TimeoutError{Upstream: u.cfg.Name, Limit: u.timeout})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// awaitTask turns a tool that must run as a task back into a plain call:
// it waits for the task's result (tasks/result blocks until the task ends)
// and cancels the task when the caller gives up.
func (u *upstream) awaitTask(ctx context.Context, l *link, created json.RawMessage) (json.RawMessage, error) {
	var ct struct {
		Task struct {
			TaskID string `json:"taskId"`
		} `json:"task"`
	}
	if err := json.Unmarshal(created, &ct); err != nil || ct.Task.TaskID == "" {
		return nil, fmt.Errorf("upstream %s answered a task-augmented call without a task", u.cfg.Name)
	}
	params, _ := json.Marshal(map[string]string{"taskId": ct.Task.TaskID})
	res, err := l.conn.call(ctx, idBase+u.ids.Add(1), string(mcp.MethodTasksResult), params)
	if err != nil && ctx.Err() != nil {
		// The caller is gone; so is its ctx, hence a short one of our own.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, cerr := l.conn.call(cctx, idBase+u.ids.Add(1), string(mcp.MethodTasksCancel), params); cerr != nil {
			u.log.Debug("could not cancel upstream task", "upstream", u.cfg.Name, "err", cerr)
		}
	}
	return res, err
}

// cancel tells the upstream to stop working on request id.
func (u *upstream) cancel(l *link, id int64, ctx context.Context) {
	// The client's own words travel on; anything else says why we gave up.
	cancel := map[string]any{"requestId": id}
	var ce *CancelledError
	if cause := context.Cause(ctx); !errors.As(cause, &ce) {
		cancel["reason"] = cause.Error()
	} else if ce.Reason != "" {
		cancel["reason"] = ce.Reason
	}
	params, _ := json.Marshal(cancel)
	if err := l.conn.notify(string(mcp.MethodNotificationCancelled), params); err != nil {
		u.log.Debug("could not cancel upstream request", "upstream", u.cfg.Name, "err", err)
	}
}

// hopMetaKeys are the _meta keys of protocol version 2026-07-28 that belong
// to one connection.
var hopMetaKeys = []string{mcp.MetaKeyProtocolVersion, mcp.MetaKeyClientInfo, mcp.MetaKeyClientCapabilities, mcp.MetaKeyLogLevel}

// hopless returns the client's _meta for a request forwarded through
// mcp-go's client, without the keys that describe the client's connection
// to the gate (an upstream spoken to with 2025-11-25 refuses a request
// that declares 2026-07-28).
func hopless(m *mcp.Meta) *mcp.Meta {
	if m == nil {
		return nil
	}
	c := *m
	c.AdditionalFields = maps.Clone(m.AdditionalFields)
	for _, k := range hopMetaKeys {
		delete(c.AdditionalFields, k)
	}
	if c.ProgressToken == nil && len(c.AdditionalFields) == 0 {
		return nil
	}
	return &c
}

// callParams builds tools/call params for the upstream: its own tool name,
// the arguments as sent, the client's _meta with the progress token
// replaced by ours, and a task request for tools that only run as tasks.
func callParams(name string, args, meta json.RawMessage, token int64, withToken, task bool) (json.RawMessage, error) {
	qname, err := json.Marshal(name)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(qname)+len(args)+len(meta)+48)
	b = append(b, `{"name":`...)
	b = append(b, qname...)
	if len(args) > 0 {
		b = append(b, `,"arguments":`...)
		b = append(b, args...)
	}
	if withToken || len(meta) > 0 {
		fields := map[string]json.RawMessage{}
		if len(meta) > 0 {
			if err := json.Unmarshal(meta, &fields); err != nil {
				return nil, fmt.Errorf("_meta: %w", err)
			}
		}
		delete(fields, "progressToken")
		// The client's per-request protocol declaration describes its
		// connection to us, not ours to the upstream.
		for _, k := range hopMetaKeys {
			delete(fields, k)
		}
		if withToken {
			fields["progressToken"] = strconv.AppendInt(nil, token, 10)
		}
		m, err := json.Marshal(fields)
		if err != nil {
			return nil, err
		}
		b = append(b, `,"_meta":`...)
		b = append(b, m...)
	}
	if task {
		b = append(b, `,"task":{}`...)
	}
	return append(b, '}'), nil
}
