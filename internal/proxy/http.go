package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/mcp-gate/mcp-gate/internal/loopback"
)

// HTTP endpoint paths.
const (
	StreamablePath = "/mcp"     // Streamable HTTP
	SSEPath        = "/sse"     // legacy HTTP+SSE: the event stream
	MessagePath    = "/message" // legacy HTTP+SSE: client messages
)

// HTTPHandler serves Streamable HTTP at /mcp and the legacy SSE transport at
// /sse and /message. Each client session has its own state in mcp-go's
// session; upstreams are shared.
//
// Two protections stay on: mcp-go refuses a request that reached a loopback
// listener with a Host header that is not loopback (DNS rebinding), and this
// handler refuses any request whose Origin header names a site other than a
// loopback one, so a web page cannot drive the gate from a browser.
func (p *Proxy) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	streamable := server.NewStreamableHTTPServer(p.srv,
		server.WithEndpointPath(StreamablePath),
		server.WithStreamableHTTPLogger(p.log),
		// The table, not mcp-go's sweeper, decides when a session expires:
		// mcp-go counts idle time from a request's start, and would expire
		// a session whose call waits for approval longer than the idle time.
		server.WithSessionIdManagerResolver(p.httpSessions),
	)
	p.httpSessions.expired = func(id string) { endSession(streamable, id) }
	p.wg.Go(func() { p.httpSessions.sweepEvery(p.ctx) })
	mux.Handle(StreamablePath, &directHTTP{p: p, next: streamable})
	sse := server.NewSSEServer(p.srv,
		server.WithSSEEndpoint(SSEPath),
		server.WithMessageEndpoint(MessagePath),
		server.WithUseFullURLForMessageEndpoint(false),
	)
	mux.Handle(SSEPath, p.admitSession(sse))
	mux.Handle(MessagePath, sse)
	return originGuard(p.checkBody(mux))
}

// originGuard refuses cross-site browser requests: a request that carries an
// Origin header must come from a loopback origin. It also refuses, as
// mcp-go does behind it, a request that reached a loopback listener under a
// name that is not loopback (DNS rebinding), because the direct path below
// answers some requests without mcp-go.
func originGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin := r.Header.Get("Origin"); origin != "" && !loopbackOrigin(origin) {
			http.Error(w, "Forbidden: cross-origin request", http.StatusForbidden)
			return
		}
		if loopback.Rebound(r) {
			http.Error(w, "Forbidden: invalid Host header", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && loopback.Host(u.Host)
}

// admitSession serves a request that opens a session (an SSE stream, a
// Streamable HTTP initialize) only while fewer than Options.MaxSessions
// are live, and counts it until the request is over.
func (p *Proxy) admitSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, ok := p.httpSessions.admit()
		if !ok {
			w.Header().Set("Retry-After", "60")
			http.Error(w, fmt.Sprintf("Service unavailable: the gate already serves its maximum of %d sessions; retry later", p.opts.MaxSessions), http.StatusServiceUnavailable)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// checkBody reads a POST's body whole, up to the message limit and within
// the body timeout, and refuses what is not one valid JSON-RPC message; the
// handlers behind it find the body and its head in the request. An
// over-limit body is refused as soon as the limit is reached, not read on;
// a slow one when the timeout is over. Other methods' bodies are limited
// too, though no handler reads them.
func (p *Proxy) checkBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := p.opts.MaxMessageBytes
		if r.Method != http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			next.ServeHTTP(w, r)
			return
		}
		// The server's ReadTimeout would also cut the long-lived streams
		// (SSE, GET) that read nothing, so the deadline is this body's.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(p.opts.BodyTimeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		_ = rc.SetReadDeadline(time.Time{})
		var tooBig *http.MaxBytesError
		var nerr net.Error
		switch {
		case errors.As(err, &tooBig):
			writeJSON(w, http.StatusRequestEntityTooLarge, rpcErrorLine(nil, mcp.INVALID_REQUEST, errMessageTooLong{limit}.Error(), nil))
			return
		case errors.As(err, &nerr) && nerr.Timeout():
			w.Header().Set("Connection", "close")
			writeJSON(w, http.StatusRequestTimeout, rpcErrorLine(nil, mcp.INVALID_REQUEST, fmt.Sprintf("Request timeout: the request body did not arrive within %s", p.opts.BodyTimeout), nil))
			return
		case err != nil:
			http.Error(w, "request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		h, k, bad := parseMessage(body)
		if bad != nil {
			writeJSON(w, http.StatusBadRequest, rpcErrorLine(bad.id, bad.code, bad.message, nil))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), messageKey{}, &postedMessage{body: body, head: h, kind: k})))
	})
}

// messageKey finds a POST's checked message in its request's context.
type messageKey struct{}

type postedMessage struct {
	body []byte
	head head
	kind kind
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// directHTTP answers plain tools/call POSTs of established 2025-11-25
// sessions and sessionless 2026-07-28 ones (http_modern.go) itself, with
// the upstream's raw result as a JSON response, and hands every other
// request to mcp-go's Streamable HTTP server. A call with
// a progress token takes mcp-go's path, which streams the notifications.
// A session's notifications/cancelled reaches the calls of both paths.
type directHTTP struct {
	p    *Proxy
	next http.Handler
}

func (d *directHTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sid := r.Header.Get(server.HeaderKeySessionID)
	m, _ := r.Context().Value(messageKey{}).(*postedMessage)
	if sid != "" {
		leave, ok := d.p.httpSessions.enter(sid)
		if !ok {
			// Expired, deleted or never issued: per the MCP spec a 404
			// tells the client to initialize a new session.
			http.Error(w, fmt.Sprintf("Not found: no session %q; it expired after %s unused or was deleted; initialize a new session", sid, d.p.opts.SessionIdle), http.StatusNotFound)
			return
		}
		defer leave()
	}
	if m != nil && sid == "" && m.kind == request && m.head.Method == string(mcp.MethodInitialize) {
		var opened string
		d.p.admitSession(d.next).ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), openedKey{}, &opened)))
		if opened != "" {
			d.p.httpSessions.leave(opened)
		}
		return
	}
	if m != nil && sid == "" && m.kind == notification && m.head.Method == string(mcp.MethodNotificationCancelled) {
		// Without a session (protocol version 2026-07-28) nothing says whose
		// request the id names, and mcp-go would cancel any client's request
		// of that id. Such a request is cancelled by closing its stream.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if m != nil && sid == "" {
		if cp, ok := d.p.modernCall(r, m); ok {
			status, out := d.callModern(r.Context(), m.head.ID, cp)
			writeJSON(w, status, out)
			return
		}
	}
	if m == nil || sid == "" || !jsonBody(r) {
		// mcp-go's server refuses a body of another type
		d.next.ServeHTTP(w, r)
		return
	}
	session, ok := d.p.session(sid)
	if !ok {
		d.next.ServeHTTP(w, r)
		return
	}
	switch {
	case m.kind == notification && m.head.Method == string(mcp.MethodNotificationCancelled):
		if key, why, ok := cancelledID(m.head.Params); ok {
			d.p.httpCalls.cancel(sid+"\x00"+key, why)
		}
		// and on to mcp-go's server, which cancels what it serves itself
		// and answers 202
	case m.kind == request && m.head.Method == string(mcp.MethodToolsCall):
		// A call whose user may be asked something takes mcp-go's path,
		// which streams the question on the call's own response.
		// So does one of a tool no upstream lists, which mcp-go's path
		// would answer itself, not as the upstream does (see newCall).
		if cp, ok := directParams(m.head.Params, false); ok && (cp.m.ProgressToken == nil && !sessionCanElicit(session.ClientSession) || !d.p.listed(cp.Name)) {
			status, out := d.call(r.Context(), session, sid, m.head.ID, cp)
			writeJSON(w, status, out)
			return
		}
		if cp, ok := decodeCallParams(m.head.Params); ok && wantsTask(cp) && d.p.taskable(r.Context(), cp) {
			writeJSON(w, http.StatusOK, d.task(r.Context(), session, sid, m.head.ID, cp))
			return
		}
	case m.kind == request && m.head.Method == string(mcp.MethodCompletionComplete):
		if line, ok := d.p.rawComplete(r.Context(), m.head.ID, m.head.Params); ok {
			writeJSON(w, http.StatusOK, line)
			return
		}
	case m.kind == request && isTaskMethod(m.head.Method):
		line, _ := d.p.taskMethod(r.Context(), sid, m.head.Method, m.head.ID, m.head.Params)
		writeJSON(w, http.StatusOK, line)
		return
	}
	d.next.ServeHTTP(w, r)
}

// call serves one direct tools/call until it is answered, the client
// cancels it (notifications/cancelled, a dropped request) or its session
// ends, and returns the HTTP status and the response: 429 for a call over
// its principal's limit.
func (d *directHTTP) call(ctx context.Context, session *liveSession, sid string, id json.RawMessage, cp *toolCallParams) (int, []byte) {
	idk, _ := idKey(id)
	key := sid + "\x00" + idk
	ctx, pend, ok := d.p.httpCalls.start(ctx, key)
	if !ok {
		bad := errDuplicateID(id)
		return http.StatusOK, rpcErrorLine(bad.id, bad.code, bad.message, nil)
	}
	ctx, stop := session.bind(ctx)
	defer stop()
	var out []byte
	c, err := d.p.newCall(ctx, cp.Name, cp.Arguments, cp.Meta)
	if err == nil {
		c.SessionID = sid
		c.Client = clientInfo(ctx, session.ClientSession)
		var res Result
		if res, err = d.p.call(ctx, c); err == nil {
			out = resultLine(id, res)
		}
	}
	if !d.p.httpCalls.finish(key, pend) {
		return http.StatusOK, rpcErrorLine(id, mcp.REQUEST_INTERRUPTED, "Request cancelled: the client sent notifications/cancelled for it", nil)
	}
	var rpc *RPCError
	if errors.As(err, &rpc) && rpc.Code == CodeTooManyCalls {
		return http.StatusTooManyRequests, errorLine(id, err)
	}
	if err != nil {
		out = errorLine(id, err)
	}
	return http.StatusOK, out
}

// task starts a task-augmented tools/call as a task of the session: it
// outlives this request and ends with the session.
func (d *directHTTP) task(ctx context.Context, session *liveSession, sid string, id json.RawMessage, cp *toolCallParams) []byte {
	// The session's standalone stream carries what the task asks the user.
	ctx = d.p.srv.WithContext(ctx, session.ClientSession)
	c, err := d.p.newCall(ctx, cp.Name, cp.Arguments, cp.Meta)
	if err != nil {
		return errorLine(id, err)
	}
	c.SessionID = sid
	c.Client = clientInfo(ctx, session.ClientSession)
	res, err := d.p.startTask(context.WithoutCancel(ctx), sid, c, cp.Task, func(f func()) { go f() })
	if err != nil {
		return errorLine(id, err)
	}
	return resultLine(id, res)
}

// endSession drops mcp-go's state of a session the table expired, through
// the one way mcp-go offers: a DELETE of that session.
func endSession(h http.Handler, id string) {
	r, err := http.NewRequest(http.MethodDelete, StreamablePath, http.NoBody)
	if err != nil {
		return
	}
	r.Header.Set(server.HeaderKeySessionID, id)
	h.ServeHTTP(discard{header: http.Header{}}, r)
}

// discard is the ResponseWriter of endSession: nobody reads the answer.
type discard struct{ header http.Header }

func (d discard) Header() http.Header       { return d.header }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}
