// Package proxy is mcp-gate's MCP proxy: an MCP server toward the client
// (stdio, Streamable HTTP, SSE), MCP clients toward upstream servers, the
// routing of tools, resources and prompts to their owners, and the tool-call
// pipeline that the gate hooks into as a Middleware.
package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/clock"
)

// Separator joins an upstream's name and its tool or prompt name when there
// are several upstreams.
const Separator = "__"

// DefaultInitWait is how long initialize waits for upstreams still starting
// unless Options say otherwise: long enough for a local server to start,
// well within the minute clients give initialize.
const DefaultInitWait = 5 * time.Second

// Options configure a Proxy.
type Options struct {
	Upstreams  []UpstreamConfig
	Middleware Middleware // wraps every tools/call; nil forwards every call
	ToolFilter ToolFilter // rewrites tools/list; nil shows every tool
	// Asks names, by client-facing tool name, the arguments the
	// Middleware takes from callers whose client cannot ask its user
	// (never forwarded); tools/list adds them to such clients' schemas.
	Asks    func(tool string) []AskArg
	Logger  *slog.Logger
	Stderr  io.Writer // receives upstream stderr, each line prefixed with "[name] "; default os.Stderr
	Version string    // reported in serverInfo and to upstreams
	Clock   Clock     // default the real clock

	StopGrace  time.Duration // SIGTERM to SIGKILL for child upstreams; default 5s
	MinBackoff time.Duration // first restart delay; default 250ms
	MaxBackoff time.Duration // default 30s
	// InitWait bounds how long initialize waits for upstreams still
	// starting, so that their capabilities and instructions are in its
	// answer; past it, the full set of capabilities is offered and the
	// instructions of upstreams still starting are missing. Default
	// DefaultInitWait.
	InitWait time.Duration
	// ListWait bounds how long a list request waits for upstreams still
	// starting; default 60s.
	ListWait time.Duration
	// MaxMessageBytes bounds one client message: a stdio line or an HTTP
	// request body; default DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// SessionIdle expires a Streamable HTTP session unused for this long
	// (its next request is answered 404, and the client initializes
	// anew); default DefaultSessionIdle.
	SessionIdle time.Duration
	// MaxSessions bounds the live HTTP sessions (Streamable HTTP sessions
	// and legacy SSE streams); an initialize beyond it is answered 503.
	// Default DefaultMaxSessions.
	MaxSessions int
	// MaxCallsInFlight bounds one principal's tools/call requests in flight,
	// approval waits included; the next one is refused. Default
	// DefaultMaxCallsInFlight.
	MaxCallsInFlight int
	// BodyTimeout bounds how long an HTTP request body may take to arrive;
	// a slower one is answered 408. Default DefaultBodyTimeout.
	BodyTimeout time.Duration
	// SingleClient says one client is served (the stdio front): upstreams
	// are initialized with the capabilities that client declares, and
	// their requests outside any call go to it (see relay.go). Otherwise
	// upstreams, shared by every session, are declared every capability
	// the gate relays.
	SingleClient bool
}

// Proxy serves MCP to clients and forwards to its upstreams. One Proxy
// serves any number of client sessions.
type Proxy struct {
	opts   Options
	log    *slog.Logger
	srv    *server.MCPServer
	ups    []*upstream
	byName map[string]*upstream
	call   CallFunc

	routes        atomic.Pointer[routeTable]
	sessions      sync.Map        // session id -> *liveSession, of every registered client session
	sessionCount  atomic.Int64    // entries in sessions (sync.Map has no length)
	httpCalls     inflight        // direct HTTP calls in flight, by session and id
	tasks         *taskStore      // task-augmented calls, by session
	httpSessions  *sessionTable   // Streamable HTTP sessions issued, and their bounds
	subs          subscriptions   // resource subscriptions of the sessions that keep none
	stdioSessions atomic.Int64    // numbers stdio sessions
	serverInfo    json.RawMessage // our Implementation, stamped on 2026-07-28 results
	client        *clientCaps     // the single client's capabilities (Options.SingleClient)
	rebuildMu     sync.Mutex
	published     published // what the MCPServer was last given, to skip no-op updates

	// ctx ends at Close: the upstreams and the session sweeper run in it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// route is where a client-facing name goes.
type route struct {
	up   *upstream
	name string // at the upstream
	task bool   // the upstream runs it only as a task
	// hidden tools are left out of tools/list but still routed, so that a
	// call to one reaches the middleware and is refused with its reason.
	hidden bool
	// taskable tools are listed with execution.taskSupport "optional"
	// (the ToolFilter asked for it) and run as tasks when a client asks.
	taskable bool
	// askSchema is the inputSchema with the Asks arguments, listed to
	// clients that cannot ask their user; nil when there are none.
	askSchema json.RawMessage
	// declared is the tool's own property names, for tools with Asks.
	declared []string
}

type routeTable struct {
	tools   map[string]route
	prompts map[string]route
	// order is each listed item's position in the upstreams' own lists (by
	// kind and name or URI): mcp-go's server lists by name, the gate lists
	// as the upstreams do.
	order map[string]int
}

// inOrder sorts a listing into the upstreams' order.
func inOrder[T any](rt *routeTable, kind string, items []T, key func(T) string) {
	slices.SortStableFunc(items, func(a, b T) int {
		return rt.order[kind+key(a)] - rt.order[kind+key(b)]
	})
}

type published struct {
	tools, resources, templates, prompts []byte
}

// New starts connecting to every upstream in parallel and returns at once;
// requests wait for an upstream only as long as they need it.
func New(ctx context.Context, opts Options) (*Proxy, error) {
	if len(opts.Upstreams) == 0 {
		return nil, errors.New("no upstream configured")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	setDefault(&opts.StopGrace, 5*time.Second)
	setDefault(&opts.MinBackoff, 250*time.Millisecond)
	setDefault(&opts.MaxBackoff, 30*time.Second)
	setDefault(&opts.InitWait, DefaultInitWait)
	setDefault(&opts.ListWait, 60*time.Second)
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	setDefault(&opts.SessionIdle, DefaultSessionIdle)
	setDefault(&opts.BodyTimeout, DefaultBodyTimeout)
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.MaxCallsInFlight <= 0 {
		opts.MaxCallsInFlight = DefaultMaxCallsInFlight
	}

	p := &Proxy{opts: opts, log: opts.Logger, byName: make(map[string]*upstream), tasks: newTaskStore(opts.Clock), client: newClientCaps()}
	p.routes.Store(&routeTable{})
	several := len(opts.Upstreams) > 1
	for _, cfg := range opts.Upstreams {
		if err := validUpstream(cfg, several); err != nil {
			return nil, err
		}
		if _, dup := p.byName[cfg.Name]; dup {
			return nil, fmt.Errorf("upstream %q configured twice", cfg.Name)
		}
		u := &upstream{
			cfg:        cfg,
			log:        p.log,
			stderr:     opts.Stderr,
			clock:      opts.Clock,
			grace:      opts.StopGrace,
			minBackoff: opts.MinBackoff,
			maxBackoff: opts.MaxBackoff,
			timeout:    cfg.Timeout,
			clientInfo: mcp.Implementation{Name: "mcp-gate", Version: opts.Version},
			changed:    p.rebuild,
			relay:      p.relay,
			ask:        p.serverRequest,
			caps:       p.upstreamCaps,
			relaying:   make(chan struct{}, maxRelayed),
			refresh:    make(chan struct{}, 1),
			ready:      make(chan struct{}),
		}
		if several {
			u.prefix = cfg.Name + Separator
		}
		setDefault(&u.timeout, DefaultCallTimeout)
		p.ups = append(p.ups, u)
		p.byName[cfg.Name] = u
	}

	p.call = p.forward
	if opts.Middleware != nil {
		p.call = opts.Middleware(p.forward)
	}
	p.call = limitCalls(opts.MaxCallsInFlight, p.call)
	p.httpSessions = newSessionTable(opts.Clock, opts.SessionIdle, opts.MaxSessions, p.subs.forget)
	p.srv = p.newServer()
	p.serverInfo, _ = json.Marshal(mcp.Implementation{Name: "mcp-gate", Version: opts.Version})

	p.ctx, p.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, u := range p.ups {
		p.wg.Go(func() { u.run(p.ctx) })
	}
	return p, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

func validUpstream(cfg UpstreamConfig, several bool) error {
	switch {
	case cfg.Name == "":
		return errors.New("upstream without a name")
	case several && strings.Contains(cfg.Name, Separator):
		return fmt.Errorf("upstream name %q must not contain %q", cfg.Name, Separator)
	case len(cfg.Command) > 0 && cfg.URL != "":
		return fmt.Errorf("upstream %q: give a command or a url, not both", cfg.Name)
	case len(cfg.Command) == 0 && cfg.URL == "":
		return fmt.Errorf("upstream %q: needs a command or a url", cfg.Name)
	}
	return nil
}

// Close stops every upstream (child processes get SIGTERM, then SIGKILL
// after the grace period) and waits for them.
func (p *Proxy) Close() error {
	p.cancel()
	p.wg.Wait()
	return nil
}

// NotifyToolsChanged re-applies the ToolFilter and Asks and, when tools/list changed,
// tells every client (notifications/tools/list_changed).
func (p *Proxy) NotifyToolsChanged() { p.rebuild() }

// Sessions is the number of client sessions registered now.
func (p *Proxy) Sessions() int64 { return p.sessionCount.Load() }

// Disconnected names the upstreams not connected now, in configuration
// order: empty when every upstream is up.
func (p *Proxy) Disconnected() []string {
	var down []string
	for _, u := range p.ups {
		if u.live.Load() == nil {
			down = append(down, u.cfg.Name)
		}
	}
	return down
}

func (p *Proxy) newServer() *server.MCPServer {
	hooks := &server.Hooks{}
	hooks.AddOnRegisterSession(func(_ context.Context, s server.ClientSession) {
		ended, end := context.WithCancelCause(context.Background())
		if _, loaded := p.sessions.LoadOrStore(s.SessionID(), &liveSession{ClientSession: s, ended: ended, end: end}); !loaded {
			p.sessionCount.Add(1)
		}
	})
	hooks.AddOnUnregisterSession(func(_ context.Context, s server.ClientSession) {
		if v, ok := p.sessions.LoadAndDelete(s.SessionID()); ok {
			p.sessionCount.Add(-1)
			v.(*liveSession).end(errSessionEnded)
		}
		p.subs.forget(s.SessionID())
		p.tasks.drop(s.SessionID())
	})
	hooks.AddAfterInitialize(func(ctx context.Context, _ any, _ *mcp.InitializeRequest, res *mcp.InitializeResult) {
		res.Capabilities, res.Instructions = p.capabilities(ctx)
		// Tasks as 2025-11-25 defines them belong to the initialize
		// handshake; 2026-07-28 moved them to an extension (see tasks.go).
		res.Capabilities.Tasks = &mcp.TasksCapability{List: &struct{}{}, Cancel: &struct{}{},
			Requests: &mcp.TaskRequestsCapability{Tools: &struct {
				Call *struct{} `json:"call,omitempty"`
			}{Call: &struct{}{}}}}
	})
	hooks.AddAfterDiscover(func(ctx context.Context, _ any, _ *mcp.DiscoverRequest, res *mcp.DiscoverResult) {
		res.Capabilities, res.Instructions = p.capabilities(ctx)
	})
	wait := func(ctx context.Context, _ any, _ any) { p.waitStarted(ctx, p.opts.ListWait) }
	hooks.AddOnRequestInitialization(func(ctx context.Context, _ any, message any) error {
		raw, ok := message.(json.RawMessage)
		if !ok {
			return nil
		}
		var m struct {
			Method mcp.MCPMethod `json:"method"`
		}
		if json.Unmarshal(raw, &m) != nil {
			return nil
		}
		switch m.Method {
		case mcp.MethodToolsList, mcp.MethodResourcesList, mcp.MethodResourcesTemplatesList, mcp.MethodPromptsList:
			return p.noneListed(ctx)
		}
		return nil
	})
	hooks.AddBeforeListTools(func(ctx context.Context, id any, m *mcp.ListToolsRequest) { wait(ctx, id, m) })
	hooks.AddAfterListTools(func(ctx context.Context, _ any, _ *mcp.ListToolsRequest, res *mcp.ListToolsResult) {
		rt := p.routes.Load()
		res.Tools = slices.DeleteFunc(res.Tools, func(t mcp.Tool) bool { return rt.tools[t.Name].hidden })
		inOrder(rt, "t", res.Tools, func(t mcp.Tool) string { return t.Name })
		p.showAsks(ctx, rt, res.Tools)
		// Task support is listed, not registered with mcp-go's server, so
		// that mcp-go never runs a call as a task of its own: the fronts
		// run tasks (tasks.go); elsewhere a task-augmented call is served
		// as a plain one.
		if !server.IsModernRequest(ctx) {
			for i := range res.Tools {
				if rt.tools[res.Tools[i].Name].taskable {
					res.Tools[i].Execution = &mcp.ToolExecution{TaskSupport: mcp.TaskSupportOptional}
				}
			}
		}
	})
	hooks.AddAfterListResources(func(_ context.Context, _ any, _ *mcp.ListResourcesRequest, res *mcp.ListResourcesResult) {
		inOrder(p.routes.Load(), "r", res.Resources, func(r mcp.Resource) string { return r.URI })
	})
	hooks.AddAfterListResourceTemplates(func(_ context.Context, _ any, _ *mcp.ListResourceTemplatesRequest, res *mcp.ListResourceTemplatesResult) {
		inOrder(p.routes.Load(), "u", res.ResourceTemplates, templateKey)
	})
	hooks.AddAfterListPrompts(func(_ context.Context, _ any, _ *mcp.ListPromptsRequest, res *mcp.ListPromptsResult) {
		inOrder(p.routes.Load(), "p", res.Prompts, func(pr mcp.Prompt) string { return pr.Name })
	})
	hooks.AddBeforeListResources(func(ctx context.Context, id any, m *mcp.ListResourcesRequest) { wait(ctx, id, m) })
	hooks.AddBeforeListResourceTemplates(func(ctx context.Context, id any, m *mcp.ListResourceTemplatesRequest) { wait(ctx, id, m) })
	hooks.AddBeforeListPrompts(func(ctx context.Context, id any, m *mcp.ListPromptsRequest) { wait(ctx, id, m) })
	hooks.AddBeforeCallTool(func(ctx context.Context, _ any, m *mcp.CallToolRequest) {
		p.lookup(ctx, func() bool { _, ok := p.routes.Load().tools[m.Params.Name]; return ok })
	})
	hooks.AddBeforeGetPrompt(func(ctx context.Context, _ any, m *mcp.GetPromptRequest) {
		p.lookup(ctx, func() bool { _, ok := p.routes.Load().prompts[m.Params.Name]; return ok })
	})
	hooks.AddBeforeReadResource(func(ctx context.Context, _ any, m *mcp.ReadResourceRequest) {
		p.lookup(ctx, func() bool { return p.listedOwner(m.Params.URI) != nil })
	})
	hooks.AddAfterSubscribe(func(ctx context.Context, _ any, m *mcp.SubscribeRequest, _ *mcp.EmptyResult) {
		p.record(ctx, m.Params.URI, true)
		p.subscribe(ctx, m.Params.URI, true)
	})
	hooks.AddAfterUnsubscribe(func(ctx context.Context, _ any, m *mcp.UnsubscribeRequest, _ *mcp.EmptyResult) {
		p.record(ctx, m.Params.URI, false)
		p.subscribe(ctx, m.Params.URI, false)
	})
	hooks.AddAfterSetLevel(func(ctx context.Context, _ any, m *mcp.SetLevelRequest, _ *mcp.EmptyResult) {
		p.setLevel(ctx, p.upstreamLevel(ctx, m.Params.Level))
	})

	// Every capability the gate can proxy is declared; initialize and
	// server/discover then narrow the answer to what the upstreams have.
	srv := server.NewMCPServer("mcp-gate", p.opts.Version,
		server.WithToolCapabilities(true),
		server.WithResourceCapabilities(true, true),
		server.WithPromptCapabilities(true),
		server.WithLogging(),
		server.WithCompletions(),
		server.WithPromptCompletionProvider(completer{p}),
		server.WithResourceCompletionProvider(completer{p}),
		server.WithHooks(hooks),
		server.WithPaginationLimit(1000),
	)
	srv.AddNotificationHandler(string(mcp.MethodNotificationRootsListChanged), p.forwardRootsChanged)
	return srv
}

// waitStarted waits, at most d, until every upstream finished its first
// connection attempt.
func (p *Proxy) waitStarted(ctx context.Context, d time.Duration) bool {
	timeout := p.opts.Clock.After(d)
	for _, u := range p.ups {
		select {
		case <-u.ready:
		case <-ctx.Done():
			return false
		case <-timeout:
			return false
		}
	}
	return true
}

// noneListed says why when no upstream has listed what it offers, once
// every upstream has finished starting: an empty list would hide that the
// upstreams are down (a 401, a refused connection).
func (p *Proxy) noneListed(ctx context.Context) error {
	if !p.waitStarted(ctx, p.opts.ListWait) {
		return nil
	}
	var why []string
	for _, u := range p.ups {
		if u.listed.Load() != nil {
			return nil
		}
		u.mu.Lock()
		err := u.lastErr
		u.mu.Unlock()
		if err == nil {
			return nil // listed meanwhile
		}
		why = append(why, err.Error())
	}
	return fmt.Errorf("%w: %s", errUnavailable, strings.Join(why, "; "))
}

// lookup reports whether found finds what a request names, waiting first,
// when it does not, for upstreams still starting (bounded by ListWait): a
// request sent right after initialize must not be answered "not found"
// only because its upstream has not listed yet.
func (p *Proxy) lookup(ctx context.Context, found func() bool) bool {
	if found() {
		return true
	}
	return p.waitStarted(ctx, p.opts.ListWait) && found()
}

// capabilities mirrors the upstreams: a capability is offered when some
// upstream has it. While an upstream has not yet said what it has, every
// capability the gate can proxy is offered, so none is hidden for the
// session's lifetime.
func (p *Proxy) capabilities(ctx context.Context) (mcp.ServerCapabilities, string) {
	var caps mcp.ServerCapabilities
	caps.Tools = &struct {
		ListChanged bool `json:"listChanged,omitempty"`
	}{ListChanged: true}
	all := p.waitStarted(ctx, p.opts.InitWait)
	var resources, subscribe, prompts, logging, completions bool
	var instructions []string
	for _, u := range p.ups {
		l := u.listed.Load()
		if l == nil {
			all = false
			continue
		}
		resources = resources || l.caps.Resources != nil
		subscribe = subscribe || (l.caps.Resources != nil && l.caps.Resources.Subscribe)
		prompts = prompts || l.caps.Prompts != nil
		logging = logging || l.caps.Logging != nil
		completions = completions || l.caps.Completions != nil
		if l.instructions != "" {
			if len(p.ups) > 1 {
				instructions = append(instructions, u.cfg.Name+": "+l.instructions)
			} else {
				instructions = append(instructions, l.instructions)
			}
		}
	}
	if !all {
		resources, subscribe, prompts, logging, completions = true, true, true, true, true
	}
	if resources {
		caps.Resources = &struct {
			Subscribe   bool `json:"subscribe,omitempty"`
			ListChanged bool `json:"listChanged,omitempty"`
		}{Subscribe: subscribe, ListChanged: true}
	}
	if prompts {
		caps.Prompts = &struct {
			ListChanged bool `json:"listChanged,omitempty"`
		}{ListChanged: true}
	}
	if logging {
		caps.Logging = &struct{}{}
	}
	if completions {
		caps.Completions = &struct{}{}
	}
	return caps, strings.Join(instructions, "\n\n")
}

// rebuild recomputes what clients see from every upstream's last listing
// and hands the MCPServer only what changed, which notifies clients.
func (p *Proxy) rebuild() {
	p.rebuildMu.Lock()
	defer p.rebuildMu.Unlock()

	rt := &routeTable{tools: map[string]route{}, prompts: map[string]route{}, order: map[string]int{}}
	var tools []server.ServerTool
	var resources []server.ServerResource
	var templates []server.ServerResourceTemplate
	var prompts []server.ServerPrompt
	seenURI := map[string]bool{} // resources and, marked "{}", templates: the first upstream wins
	for _, u := range p.ups {
		l := u.listed.Load()
		if l == nil {
			continue
		}
		for _, t := range l.tools {
			upstreamName := t.Name
			task := t.Execution != nil && t.Execution.TaskSupport == mcp.TaskSupportRequired
			t.Name = u.prefix + t.Name
			// The gate forwards calls synchronously; task markers would
			// invite task-augmented calls it does not relay.
			t.Execution = nil
			hidden := p.opts.ToolFilter != nil && !p.opts.ToolFilter(&t)
			taskable := t.Execution != nil && t.Execution.TaskSupport == mcp.TaskSupportOptional
			t.Execution = nil // see the tools/list hook
			if err := mcp.ValidateParamHeaderAnnotations(&t); err != nil {
				p.log.Warn("hiding tool with invalid header annotations", "tool", t.Name, "err", err)
				continue
			}
			if _, dup := rt.tools[t.Name]; dup {
				continue
			}
			r := route{up: u, name: upstreamName, task: task, hidden: hidden, taskable: taskable}
			if asks := p.asks(t.Name); len(asks) > 0 {
				schema, declared, err := withAsks(t.RawInputSchema, asks)
				if err != nil {
					p.log.Warn("tool schema cannot take the arguments its rule needs; clients that cannot ask their user must pass them anyway", "tool", t.Name, "err", err)
				} else if !bytes.Equal(schema, t.RawInputSchema) {
					r.askSchema = schema
				}
				r.declared = declared
			}
			rt.tools[t.Name] = r
			rt.order["t"+t.Name] = len(tools)
			tools = append(tools, server.ServerTool{Tool: t, Handler: p.handleTool})
		}
		for _, r := range l.resources {
			if seenURI[r.URI] {
				continue
			}
			seenURI[r.URI] = true
			rt.order["r"+r.URI] = len(resources)
			resources = append(resources, server.ServerResource{Resource: r, Handler: u.readResource})
		}
		for _, t := range l.templates {
			if seenURI["{}"+templateKey(t)] {
				continue
			}
			seenURI["{}"+templateKey(t)] = true
			rt.order["u"+templateKey(t)] = len(templates)
			templates = append(templates, server.ServerResourceTemplate{Template: t, Handler: u.readResource})
		}
		for _, pr := range l.prompts {
			upstreamName := pr.Name
			pr.Name = u.prefix + pr.Name
			rt.prompts[pr.Name] = route{up: u, name: upstreamName}
			rt.order["p"+pr.Name] = len(prompts)
			prompts = append(prompts, server.ServerPrompt{Prompt: pr, Handler: u.getPrompt(upstreamName)})
		}
	}
	if b := fingerprint(tools, func(t server.ServerTool) any {
		r := rt.tools[t.Tool.Name]
		return []any{t.Tool, r.hidden, r.taskable, r.askSchema}
	}); !bytes.Equal(b, p.published.tools) {
		p.published.tools = b
		p.srv.SetTools(tools...)
	}
	if b := fingerprint(resources, func(r server.ServerResource) any { return r.Resource }); !bytes.Equal(b, p.published.resources) {
		p.published.resources = b
		p.srv.SetResources(resources...)
	}
	if b := fingerprint(templates, func(t server.ServerResourceTemplate) any { return t.Template }); !bytes.Equal(b, p.published.templates) {
		p.published.templates = b
		p.srv.SetResourceTemplates(templates...)
	}
	if b := fingerprint(prompts, func(pr server.ServerPrompt) any { return pr.Prompt }); !bytes.Equal(b, p.published.prompts) {
		p.published.prompts = b
		p.srv.SetPrompts(prompts...)
	}
	// After the server's tables, so a name found here is served there too.
	p.routes.Store(rt)
}

// asks is what Options.Asks says of tool.
func (p *Proxy) asks(tool string) []AskArg {
	if p.opts.Asks == nil {
		return nil
	}
	return p.opts.Asks(tool)
}

func templateKey(t mcp.ResourceTemplate) string {
	if t.URITemplate == nil {
		return ""
	}
	return t.URITemplate.Raw()
}

// fingerprint encodes what clients would see of a list, to detect changes.
func fingerprint[T any](items []T, view func(T) any) []byte {
	views := make([]any, len(items))
	for i, it := range items {
		views[i] = view(it)
	}
	b, _ := json.Marshal(views)
	return b
}

// liveSession is a registered client session and the end of its life: an
// SSE stream that closed, a Streamable HTTP session deleted, a stdio client
// gone. Calls of the session end with it, even those whose request context
// lives on (mcp-go serves SSE messages detached from their HTTP request).
type liveSession struct {
	server.ClientSession
	ended context.Context
	end   context.CancelCauseFunc
}

var errSessionEnded = errors.New("the client's session ended")

// bind returns ctx, cancelled also when the session ends.
func (s *liveSession) bind(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(s.ended, func() { cancel(context.Cause(s.ended)) })
	return ctx, func() { stop(); cancel(nil) }
}

func (p *Proxy) session(id string) (*liveSession, bool) {
	v, ok := p.sessions.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*liveSession), true
}

// forward is the innermost CallFunc: it sends the call to its upstream,
// unless the client has given up on it meanwhile (while it waited for
// approval, say): a cancelled call is never forwarded.
func (p *Proxy) forward(ctx context.Context, c *Call) (Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u, ok := p.byName[c.Upstream]
	if !ok {
		return nil, &RPCError{Code: mcp.INVALID_PARAMS, Message: fmt.Sprintf("no upstream %q", c.Upstream)}
	}
	return u.callTool(ctx, c)
}

// newCall resolves a client-facing tool name into a Call. A name not yet
// known waits for upstreams still starting. ctx names the client session
// when the front has one, so that the gate can ask its user.
func (p *Proxy) newCall(ctx context.Context, name string, args, meta json.RawMessage) (*Call, error) {
	var r route
	if !p.lookup(ctx, func() bool { var ok bool; r, ok = p.routes.Load().tools[name]; return ok }) {
		// A name no upstream lists still goes, through the Middleware
		// (which decides on it like any other), to the upstream its name
		// points to, so that the client gets that upstream's own answer
		// to an unknown tool, as it would directly: some answer with a
		// tool error, some with a JSON-RPC error.
		u, upstreamName := p.unlisted(name)
		if u == nil {
			return nil, &RPCError{Code: mcp.INVALID_PARAMS, Message: fmt.Sprintf("tool '%s' not found", name)}
		}
		r = route{up: u, name: upstreamName}
	}
	c := &Call{Tool: name, Upstream: r.up.cfg.Name, UpstreamTool: r.name, Arguments: args, Principal: principalFrom(ctx), Declared: r.declared, meta: meta, task: r.task}
	if canElicit(ctx) {
		c.Elicit = p.elicit
	}
	return c, nil
}

// listed reports whether an upstream lists tool now.
func (p *Proxy) listed(tool string) bool {
	_, ok := p.routes.Load().tools[tool]
	return ok
}

// unlisted is the upstream a tool name no upstream lists points to, and the
// name there: the only upstream, or the one whose prefix the name has.
func (p *Proxy) unlisted(name string) (*upstream, string) {
	if len(p.ups) == 1 {
		return p.ups[0], name
	}
	prefix, rest, ok := strings.Cut(name, Separator)
	if u := p.byName[prefix]; ok && u != nil && rest != "" {
		return u, rest
	}
	return nil, ""
}

// handleTool serves tools/call for requests that go through mcp-go's
// server: HTTP, SSE, and stdio requests of protocol version 2026-07-28.
func (p *Proxy) handleTool(ctx context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var meta json.RawMessage
	var token any
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
		meta, _ = json.Marshal(req.Params.Meta)
	}
	session := server.ClientSessionFromContext(ctx)
	if session != nil {
		if live, ok := p.session(session.SessionID()); ok {
			var stop func()
			ctx, stop = live.bind(ctx)
			defer stop()
		}
	}
	c, err := p.newCall(ctx, req.Params.Name, req.Params.RawArguments, meta)
	if err != nil {
		return nil, err
	}
	if session != nil {
		c.SessionID = session.SessionID()
	}
	c.Client = clientInfo(ctx, session)
	if token != nil {
		c.relay = func(progress float64, total *float64, message string) {
			params := map[string]any{"progressToken": token, "progress": progress}
			if total != nil {
				params["total"] = *total
			}
			if message != "" {
				params["message"] = message
			}
			if err := p.srv.SendNotificationToClient(ctx, string(mcp.MethodNotificationProgress), params); err != nil {
				p.log.Debug("progress not delivered", "err", err)
			}
		}
		c.Progress = progressFor(c.relay)
	}
	raw, err := p.call(ctx, c)
	if err != nil {
		return nil, err
	}
	var res mcp.CallToolResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("upstream %s returned an unreadable result: %w", c.Upstream, err)
	}
	return &res, nil
}

func progressFor(relay progressFunc) func(context.Context, float64, string) {
	return func(_ context.Context, progress float64, message string) { relay(progress, nil, message) }
}

func clientInfo(ctx context.Context, session server.ClientSession) ClientInfo {
	if info := server.RequestProtocolInfoFromContext(ctx); info != nil && info.ClientInfo != nil {
		return ClientInfo{Name: info.ClientInfo.Name, Version: info.ClientInfo.Version}
	}
	if s, ok := session.(server.SessionWithClientInfo); ok {
		ci := s.GetClientInfo()
		return ClientInfo{Name: ci.Name, Version: ci.Version}
	}
	return ClientInfo{}
}

func (u *upstream) readResource(ctx context.Context, req mcp.ReadResourceRequest) ([]mcp.ResourceContents, error) {
	l, err := u.get(ctx)
	if err != nil {
		return nil, err
	}
	req.Params.Meta = hopless(req.Params.Meta)
	res, err := l.client.ReadResource(ctx, req)
	if err != nil {
		return nil, err
	}
	return res.Contents, nil
}

func (u *upstream) getPrompt(name string) server.PromptHandlerFunc {
	return func(ctx context.Context, req mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		l, err := u.get(ctx)
		if err != nil {
			return nil, err
		}
		req.Params.Name = name
		req.Params.Meta = hopless(req.Params.Meta)
		return l.client.GetPrompt(ctx, req)
	}
}

// owner finds the upstream that lists uri, or whose template matches it;
// with one upstream, that one.
func (p *Proxy) owner(uri string) *upstream {
	if u := p.listedOwner(uri); u != nil {
		return u
	}
	if len(p.ups) == 1 {
		return p.ups[0]
	}
	return nil
}

// listedOwner finds the upstream that lists uri, or whose template matches
// it, among those that have listed.
func (p *Proxy) listedOwner(uri string) *upstream {
	for _, u := range p.ups {
		l := u.listed.Load()
		if l == nil {
			continue
		}
		for _, r := range l.resources {
			if r.URI == uri {
				return u
			}
		}
	}
	for _, u := range p.ups {
		l := u.listed.Load()
		if l == nil {
			continue
		}
		for _, t := range l.templates {
			if t.URITemplate != nil && t.URITemplate.Regexp().MatchString(uri) {
				return u
			}
		}
	}
	return nil
}

func (p *Proxy) subscribe(ctx context.Context, uri string, on bool) {
	u := p.owner(uri)
	if u == nil {
		return
	}
	l, err := u.get(ctx)
	if err != nil || l.caps.Resources == nil || !l.caps.Resources.Subscribe {
		return
	}
	if on {
		req := mcp.SubscribeRequest{}
		req.Params.URI = uri
		//lint:ignore SA1019 upstreams are spoken to with the initialize handshake, which subscribes this way
		err = l.client.Subscribe(ctx, req)
	} else {
		req := mcp.UnsubscribeRequest{}
		req.Params.URI = uri
		//lint:ignore SA1019 as Subscribe above
		err = l.client.Unsubscribe(ctx, req)
	}
	if err != nil {
		p.log.Warn("resource subscription not forwarded", "upstream", u.cfg.Name, "uri", uri, "err", err)
	}
}

// setLevel sets the level of every upstream that logs.
func (p *Proxy) setLevel(ctx context.Context, level mcp.LoggingLevel) {
	for _, u := range p.ups {
		l := u.live.Load()
		if l == nil || l.caps.Logging == nil {
			continue
		}
		req := mcp.SetLevelRequest{}
		req.Params.Level = level
		//lint:ignore SA1019 clients of the handshake protocol still set levels; pass them on
		if err := l.client.SetLevel(ctx, req); err != nil {
			p.log.Warn("log level not forwarded", "upstream", u.cfg.Name, "err", err)
		}
	}
}

// completer forwards completion/complete to the owner of the prompt or
// resource template.
type completer struct{ p *Proxy }

func (c completer) CompletePromptArgument(ctx context.Context, name string, arg mcp.CompleteArgument, cctx mcp.CompleteContext) (*mcp.Completion, error) {
	var r route
	if !c.p.lookup(ctx, func() bool { var ok bool; r, ok = c.p.routes.Load().prompts[name]; return ok }) {
		return nil, fmt.Errorf("prompt %q not found", name)
	}
	return c.complete(ctx, r.up, mcp.PromptReference{Type: "ref/prompt", Name: r.name}, arg, cctx)
}

func (c completer) CompleteResourceArgument(ctx context.Context, uri string, arg mcp.CompleteArgument, cctx mcp.CompleteContext) (*mcp.Completion, error) {
	var u *upstream
	if !c.p.lookup(ctx, func() bool { u = c.p.templateOwner(uri); return u != nil }) {
		return nil, fmt.Errorf("resource template %q not found", uri)
	}
	return c.complete(ctx, u, mcp.ResourceReference{Type: "ref/resource", URI: uri}, arg, cctx)
}

func (c completer) complete(ctx context.Context, u *upstream, ref any, arg mcp.CompleteArgument, cctx mcp.CompleteContext) (*mcp.Completion, error) {
	l, err := u.get(ctx)
	if err != nil {
		return nil, err
	}
	if l.caps.Completions == nil {
		return &mcp.Completion{Values: []string{}}, nil
	}
	req := mcp.CompleteRequest{}
	req.Params.Ref = ref
	req.Params.Argument = arg
	req.Params.Context = cctx
	res, err := l.client.Complete(ctx, req)
	if err != nil {
		return nil, err
	}
	return &res.Completion, nil
}

func (p *Proxy) templateOwner(uriTemplate string) *upstream {
	for _, u := range p.ups {
		if l := u.listed.Load(); l != nil {
			for _, t := range l.templates {
				if t.URITemplate != nil && t.URITemplate.Raw() == uriTemplate {
					return u
				}
			}
		}
	}
	return nil
}
