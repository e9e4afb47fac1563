package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// The relay: requests an upstream sends the gate as its client
// (sampling/createMessage, elicitation/create, roots/list) go to the client
// session whose call caused them, and that client's answer goes back.
//
// Routing, in order:
//  1. a request that arrives in the context of a forwarded call (an HTTP
//     upstream's answer stream of that call) goes to that call's session;
//  2. otherwise, when every call in flight at that upstream comes from one
//     session, to that session;
//  3. otherwise, with a single client (the stdio front), to it;
//  4. otherwise no session is chosen: several sessions, perhaps of several
//     principals, share the upstream, and a guess could show one user's
//     request to another. The upstream gets METHOD_NOT_FOUND.
//
// The chosen session must have declared the capability the request needs,
// or the upstream gets the error the protocol prescribes.

// maxRelayed bounds the requests of one upstream waiting for a client's
// answer; past it the upstream is told to retry later.
const maxRelayed = 64

// relayCaps keeps of a client's capabilities those the gate relays.
func relayCaps(c mcp.ClientCapabilities) mcp.ClientCapabilities {
	return mcp.ClientCapabilities{Roots: c.Roots, Sampling: c.Sampling, Elicitation: c.Elicitation}
}

// relayableCaps is every client capability the gate relays: what it
// declares to upstreams it shares among clients, whose capabilities it
// checks request by request.
func relayableCaps() mcp.ClientCapabilities {
	return mcp.ClientCapabilities{
		Roots: &struct {
			ListChanged bool `json:"listChanged,omitempty"`
		}{ListChanged: true},
		Sampling:    &mcp.SamplingCapability{},
		Elicitation: &mcp.ElicitationCapability{Form: &struct{}{}, URL: &struct{}{}},
	}
}

// clientCaps is the single client's capabilities, once its first request
// has told them.
type clientCaps struct {
	once  sync.Once
	known chan struct{}
	caps  mcp.ClientCapabilities
}

func newClientCaps() *clientCaps { return &clientCaps{known: make(chan struct{})} }

func (c *clientCaps) learn(caps mcp.ClientCapabilities) {
	c.once.Do(func() {
		c.caps = relayCaps(caps)
		close(c.known)
	})
}

// learnClient records the single client's capabilities from its first
// request: an initialize declares them; a client that starts with anything
// else speaks 2026-07-28, which has no server-to-client requests, and gets
// none declared on its behalf.
func (p *Proxy) learnClient(h head) {
	var caps mcp.ClientCapabilities
	if h.Method == string(mcp.MethodInitialize) {
		var init struct {
			Capabilities mcp.ClientCapabilities `json:"capabilities"`
		}
		_ = json.Unmarshal(h.Params, &init) // unreadable capabilities declare none
		caps = init.Capabilities
	}
	p.client.learn(caps)
}

// upstreamCaps is what the gate declares to an upstream in its initialize:
// with a single client, that client's relayed capabilities (waiting for
// its first request, at most InitWait); otherwise, or when the client is
// slower, every capability the gate relays.
func (p *Proxy) upstreamCaps(ctx context.Context) mcp.ClientCapabilities {
	if !p.opts.SingleClient {
		return relayableCaps()
	}
	select {
	case <-p.client.known:
		return p.client.caps
	case <-ctx.Done():
	case <-p.opts.Clock.After(p.opts.InitWait):
	}
	return relayableCaps()
}

// caller is the client session behind a forwarded call.
type caller struct {
	session   string
	principal string
}

type callerKey struct{}

// callers counts one upstream's calls in flight by caller.
type callers struct {
	mu sync.Mutex
	n  map[caller]int
}

// enter counts a call until leave is called.
func (c *callers) enter(k caller) (leave func()) {
	c.mu.Lock()
	if c.n == nil {
		c.n = make(map[caller]int)
	}
	c.n[k]++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.n[k]--; c.n[k] == 0 {
			delete(c.n, k)
		}
		c.mu.Unlock()
	}
}

// sole is the one caller with calls in flight, if there is exactly one;
// a nil callers (not known) has none.
func (c *callers) sole() (caller, bool) {
	if c == nil {
		return caller{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.n) != 1 {
		return caller{}, false
	}
	for k := range c.n {
		return k, true
	}
	return caller{}, false
}

// onePrincipal is the sessions with calls in flight when all of those
// calls are one principal's; false when there are none, or calls of
// several principals. A nil callers (not known) has none.
func (c *callers) onePrincipal() (map[string]bool, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	sessions := make(map[string]bool, len(c.n))
	var principal string
	for k := range c.n {
		if len(sessions) > 0 && k.principal != principal {
			return nil, false
		}
		principal, sessions[k.session] = k.principal, true
	}
	return sessions, len(sessions) > 0
}

// busy reports whether any call is in flight; a nil callers has none.
func (c *callers) busy() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n) > 0
}

// serverRequest answers one request from upstream u: ping itself, the
// relayed methods by the client session the routing rules choose.
func (p *Proxy) serverRequest(ctx context.Context, u *upstream, method string, params json.RawMessage) (json.RawMessage, error) {
	switch mcp.MCPMethod(method) {
	case mcp.MethodPing:
		return json.RawMessage(`{}`), nil
	case mcp.MethodSamplingCreateMessage, mcp.MethodElicitationCreate, mcp.MethodListRoots:
	default:
		return nil, &RPCError{Code: mcp.METHOD_NOT_FOUND, Message: "Method not found: " + method}
	}
	s, err := p.target(ctx, u)
	if err != nil {
		p.log.Warn("upstream request not relayed", "upstream", u.cfg.Name, "method", method, "why", err)
		return nil, &RPCError{Code: mcp.METHOD_NOT_FOUND, Message: fmt.Sprintf("Method not found: %s: %v", method, err)}
	}
	if err := permits(s.ClientSession, method, params); err != nil {
		return nil, err
	}
	ctx, stop := s.bind(ctx)
	defer stop()
	res, err := askSession(ctx, s.ClientSession, method, params)
	if err != nil && ctx.Err() != nil {
		return nil, &RPCError{Code: mcp.REQUEST_INTERRUPTED, Message: fmt.Sprintf("Request interrupted: %v", context.Cause(ctx))}
	}
	return res, err
}

// target picks the client session for a request of upstream u (see the
// routing rules above).
func (p *Proxy) target(ctx context.Context, u *upstream) (*liveSession, error) {
	k, ok := ctx.Value(callerKey{}).(caller)
	if !ok {
		k, ok = u.callers.sole()
	}
	if !ok && p.opts.SingleClient {
		p.sessions.Range(func(id, _ any) bool {
			k, ok = caller{session: id.(string)}, p.sessionCount.Load() == 1
			return false
		})
	}
	if !ok {
		return nil, errors.New("no client session to ask: the request came outside a call, and the upstream is shared by several sessions or none")
	}
	s, found := p.session(k.session)
	if !found {
		return nil, errors.New("the client session whose call caused the request has ended")
	}
	return s, nil
}

// permits checks that session declared the capability method needs.
func permits(cs server.ClientSession, method string, params json.RawMessage) error {
	if modern(cs) {
		return &RPCError{Code: mcp.METHOD_NOT_FOUND, Message: "Method not found: " + method + ": the client speaks MCP 2026-07-28, which has no server-to-client requests"}
	}
	var caps mcp.ClientCapabilities
	if ci, ok := cs.(server.SessionWithClientInfo); ok {
		caps = ci.GetClientCapabilities()
	}
	missing := func(what string) error {
		return &RPCError{Code: mcp.METHOD_NOT_FOUND, Message: "Method not found: " + method + ": the client did not declare the " + what + " capability"}
	}
	switch mcp.MCPMethod(method) {
	case mcp.MethodSamplingCreateMessage:
		if caps.Sampling == nil {
			return missing("sampling")
		}
	case mcp.MethodListRoots:
		if caps.Roots == nil {
			return missing("roots")
		}
	case mcp.MethodElicitationCreate:
		e := caps.Elicitation
		if e == nil {
			return missing("elicitation")
		}
		var ep struct {
			Mode string `json:"mode"`
		}
		_ = json.Unmarshal(params, &ep)
		// An elicitation capability that names no mode supports form.
		form := e.Form != nil || e.URL == nil
		if (ep.Mode == "url" && e.URL == nil) || (ep.Mode != "url" && !form) {
			mode := ep.Mode
			if mode == "" {
				mode = "form"
			}
			return &RPCError{Code: mcp.INVALID_PARAMS, Message: "Invalid params: the client does not support elicitation mode " + strconv.Quote(mode)}
		}
	}
	return nil
}

// modern reports whether a session speaks protocol version 2026-07-28 or
// later.
func modern(cs server.ClientSession) bool {
	switch s := cs.(type) {
	case *stdioSession:
		return !s.handshake.Load()
	case server.SessionWithProtocolVersion:
		return mcp.IsModernProtocol(s.ProtocolVersion())
	}
	return false
}

// askSession sends a request to a client session and returns its answer:
// verbatim on the stdio front, through mcp-go's typed session requests on
// the HTTP front.
func askSession(ctx context.Context, cs server.ClientSession, method string, params json.RawMessage) (json.RawMessage, error) {
	if s, ok := cs.(*stdioSession); ok {
		return s.ask(ctx, method, params)
	}
	var res any
	var err error
	switch mcp.MCPMethod(method) {
	case mcp.MethodSamplingCreateMessage:
		s, ok := cs.(server.SessionWithSampling)
		if !ok {
			return nil, unsupportedTransport(method)
		}
		req := mcp.CreateMessageRequest{Request: mcp.Request{Method: method}}
		if err := json.Unmarshal(params, &req.CreateMessageParams); err != nil {
			return nil, &RPCError{Code: mcp.INVALID_PARAMS, Message: "Invalid params: " + err.Error()}
		}
		res, err = s.RequestSampling(ctx, req)
	case mcp.MethodElicitationCreate:
		s, ok := cs.(server.SessionWithElicitation)
		if !ok {
			return nil, unsupportedTransport(method)
		}
		req := mcp.ElicitationRequest{Request: mcp.Request{Method: method}}
		if err := json.Unmarshal(params, &req.Params); err != nil {
			return nil, &RPCError{Code: mcp.INVALID_PARAMS, Message: "Invalid params: " + err.Error()}
		}
		res, err = s.RequestElicitation(ctx, req)
	case mcp.MethodListRoots:
		s, ok := cs.(server.SessionWithRoots)
		if !ok {
			return nil, unsupportedTransport(method)
		}
		res, err = s.ListRoots(ctx, mcp.ListRootsRequest{Request: mcp.Request{Method: method}})
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

func unsupportedTransport(method string) error {
	return &RPCError{Code: mcp.METHOD_NOT_FOUND, Message: "Method not found: " + method + ": the client's transport (legacy SSE) carries no requests to the client"}
}

// onRequest serves a request from the upstream on its own goroutine and
// hands the answer to reply. The request can be cancelled by the upstream
// (notifications/cancelled), and is bounded by the upstream's timeout.
func (u *upstream) onRequest(ctx context.Context, id json.RawMessage, method string, params json.RawMessage, reply func(json.RawMessage, error)) {
	key, ok := idKey(id)
	if !ok {
		return
	}
	select {
	case u.relaying <- struct{}{}:
	default:
		reply(nil, &RPCError{Code: mcp.INTERNAL_ERROR, Message: fmt.Sprintf("Internal error: %d requests already wait for the client; retry later", maxRelayed)})
		return
	}
	ctx, cancel := context.WithCancelCause(ctx)
	if _, dup := u.asks.LoadOrStore(key, cancel); dup {
		cancel(nil)
		<-u.relaying
		reply(nil, &RPCError{Code: mcp.INVALID_REQUEST, Message: "Invalid Request: id already used by a request still in flight"})
		return
	}
	ctx, stop := u.limit(ctx)
	go func() {
		res, err := u.ask(ctx, u, method, params)
		// Released before the answer: the upstream may reuse the id at once.
		stop()
		cancel(nil)
		u.asks.Delete(key)
		<-u.relaying
		reply(res, err)
	}()
}

// cancelRequest stops relaying the request a notifications/cancelled of the
// upstream names.
func (u *upstream) cancelRequest(params json.RawMessage) {
	key, why, ok := cancelledID(params)
	if !ok {
		return
	}
	if f, ok := u.asks.Load(key); ok {
		f.(context.CancelCauseFunc)(why)
	}
}

// httpRequests answers an HTTP upstream's requests in place of mcp-go's
// client, which knows only its own handlers and answers the rest -32603.
func (u *upstream) httpRequests(ctx context.Context, req transport.JSONRPCRequest) (*transport.JSONRPCResponse, error) {
	id, err := json.Marshal(req.ID)
	if err != nil {
		return nil, err
	}
	var params json.RawMessage
	if req.Params != nil {
		if params, err = json.Marshal(req.Params); err != nil {
			return nil, err
		}
	}
	done := make(chan *transport.JSONRPCResponse, 1)
	u.onRequest(ctx, id, req.Method, params, func(res json.RawMessage, err error) {
		done <- responseFor(req.ID, res, err)
	})
	select {
	case r := <-done:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func responseFor(id mcp.RequestId, res json.RawMessage, err error) *transport.JSONRPCResponse {
	r := &transport.JSONRPCResponse{JSONRPC: mcp.JSONRPC_VERSION, ID: id}
	if err == nil {
		r.Result = res
		return r
	}
	var rpc *RPCError
	if !errors.As(err, &rpc) {
		rpc = &RPCError{Code: mcp.INTERNAL_ERROR, Message: err.Error()}
	}
	r.Error = &mcp.JSONRPCErrorDetails{Code: rpc.Code, Message: rpc.Message}
	if len(rpc.Data) > 0 {
		r.Error.Data = rpc.Data
	}
	return r
}

// childRequest answers a stdio upstream's request on its stdin.
func (u *upstream) childRequest(c *childConn, id json.RawMessage, method string, params json.RawMessage) {
	u.onRequest(context.Background(), id, method, params, func(res json.RawMessage, err error) {
		if err != nil {
			_ = c.write(errorLine(id, err))
			return
		}
		_ = c.write(resultLine(id, res))
	})
}

// forwardRootsChanged tells every upstream that the client's roots changed.
func (p *Proxy) forwardRootsChanged(context.Context, mcp.JSONRPCNotification) {
	for _, u := range p.ups {
		if l := u.live.Load(); l != nil {
			if err := l.conn.notify(string(mcp.MethodNotificationRootsListChanged), nil); err != nil {
				p.log.Debug("roots/list_changed not forwarded", "upstream", u.cfg.Name, "err", err)
			}
		}
	}
}

var _ server.SessionWithElicitation = (*stdioSession)(nil)

// RequestElicitation asks the stdio client's user, for mcp-go's server
// and the gate's own questions (Call.Elicit).
func (s *stdioSession) RequestElicitation(ctx context.Context, req mcp.ElicitationRequest) (*mcp.ElicitationResult, error) {
	params, err := json.Marshal(req.Params)
	if err != nil {
		return nil, err
	}
	raw, err := s.ask(ctx, string(mcp.MethodElicitationCreate), params)
	if err != nil {
		return nil, err
	}
	var res mcp.ElicitationResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("the client's elicitation answer is unreadable: %w", err)
	}
	return &res, nil
}
