package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// ServeStdio serves one client on in/out (newline-delimited JSON-RPC) until
// in ends or ctx is cancelled. Every request runs on its own goroutine, so a
// held call never delays another. tools/call of the initialize-handshake
// protocol generation takes a direct path: raw arguments in, the upstream's
// raw result out. Everything else goes through mcp-go's server.
func (p *Proxy) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	w := &lineWriter{w: out}
	sess := &stdioSession{
		id:    "stdio-" + strconv.FormatInt(p.stdioSessions.Add(1), 10),
		notes: make(chan mcp.JSONRPCNotification, 256),
		w:     w,
		ready: make(chan struct{}),
	}
	if err := p.srv.RegisterSession(ctx, sess); err != nil {
		return err
	}
	defer p.srv.UnregisterSession(ctx, sess.SessionID())
	ctx = p.srv.WithContext(ctx, sess)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var notesDone sync.WaitGroup
	notesDone.Go(func() {
		for {
			select {
			case n := <-sess.notes:
				w.json(n)
			case <-ctx.Done():
				return
			}
		}
	})

	// Messages are routed on the reading goroutine, without a hand-off;
	// reading runs apart from this one so that a cancelled ctx ends
	// ServeStdio even while in blocks.
	requests := newTracker()
	readErr := make(chan error, 1)
	go func() {
		r := bufio.NewReaderSize(in, 64<<10)
		for {
			line, tooLong, err := readLine(r, p.opts.MaxMessageBytes)
			switch {
			case ctx.Err() != nil:
			case tooLong:
				w.error(nil, mcp.INVALID_REQUEST, errMessageTooLong{p.opts.MaxMessageBytes}.Error(), nil)
			case len(bytes.TrimSpace(line)) > 0:
				p.stdioMessage(ctx, sess, w, line, requests)
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()

	var err error
	select {
	case err = <-readErr:
	case <-ctx.Done():
		err = ctx.Err()
	}
	cancel()
	requests.closeAndWait()
	notesDone.Wait()
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// tracker runs request goroutines and waits for them; once closed it
// starts no more. A goroutine that has served a request waits a while for
// the next one rather than exit, so a session's steady stream of calls
// reuses goroutines whose stacks have already grown to what a call needs
// (a fresh one grows its stack, copying it, on every call).
type tracker struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	idle   chan func()   // taken by a goroutine waiting for more work
	quit   chan struct{} // closed by closeAndWait
}

// trackerIdle is how long a request goroutine waits for another request.
const trackerIdle = 10 * time.Second

func newTracker() *tracker {
	return &tracker{idle: make(chan func()), quit: make(chan struct{})}
}

func (t *tracker) Go(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	select {
	case t.idle <- f: // a waiting goroutine runs it
	default:
		t.wg.Go(func() {
			f()
			t.serve()
		})
	}
}

// serve runs the requests handed to this goroutine until it has waited
// trackerIdle for one, or the tracker closes.
func (t *tracker) serve() {
	timer := time.NewTimer(trackerIdle)
	defer timer.Stop()
	for {
		select {
		case f := <-t.idle:
			f()
			timer.Reset(trackerIdle)
		case <-timer.C:
			return
		case <-t.quit:
			return
		}
	}
}

func (t *tracker) closeAndWait() {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.quit)
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// toolCallParams is tools/call's params as the direct path needs them.
type toolCallParams struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Meta      json.RawMessage `json:"_meta"`
	Task      json.RawMessage `json:"task"`

	m callMeta // decoded from Meta
}

// callMeta is what the direct path reads from params._meta.
type callMeta struct {
	ProgressToken   json.RawMessage     `json:"progressToken"`
	ProtocolVersion string              `json:"io.modelcontextprotocol/protocolVersion"`
	ClientInfo      *mcp.Implementation `json:"io.modelcontextprotocol/clientInfo"`
	LogLevel        mcp.LoggingLevel    `json:"io.modelcontextprotocol/logLevel"`
	Capabilities    json.RawMessage     `json:"io.modelcontextprotocol/clientCapabilities"`
}

// directParams decodes tools/call params for the direct path, which serves
// plain calls: not task-augmented, and of protocol version 2026-07-28 only
// where modern allows it (the caller then decorates the result as that
// version requires).
func directParams(params json.RawMessage, modern bool) (*toolCallParams, bool) {
	cp, ok := decodeCallParams(params)
	if !ok || len(cp.Task) > 0 {
		return nil, false
	}
	if v := cp.m.ProtocolVersion; v != "" && (!modern || !mcp.IsModernProtocol(v) || !mcp.IsValidProtocolVersion(v) || !declaresCapabilities(cp.m.Capabilities)) {
		return nil, false // mcp-go's server answers unsupported versions and malformed _meta
	}
	return cp, true
}

// declaresCapabilities reports whether a 2026-07-28 request's client
// capabilities are what mcp-go's server requires of every such request: an
// object of capabilities (an empty one declares none).
func declaresCapabilities(raw json.RawMessage) bool {
	var caps *mcp.ClientCapabilities
	return json.Unmarshal(raw, &caps) == nil && caps != nil
}

// decodeCallParams decodes tools/call params and their _meta.
func decodeCallParams(params json.RawMessage) (*toolCallParams, bool) {
	var cp toolCallParams
	if json.Unmarshal(params, &cp) != nil {
		return nil, false
	}
	if len(cp.Meta) > 0 {
		if json.Unmarshal(cp.Meta, &cp.m) != nil {
			return nil, false
		}
		if bytes.Equal(cp.m.ProgressToken, []byte("null")) {
			cp.m.ProgressToken = nil
		}
	}
	return &cp, true
}

// decorate stamps a raw result with what protocol version 2026-07-28
// requires of every result: resultType and the server's identity.
func (p *Proxy) decorate(res json.RawMessage) json.RawMessage {
	var has struct {
		Meta       json.RawMessage `json:"_meta"`
		ResultType json.RawMessage `json:"resultType"`
	}
	if json.Unmarshal(res, &has) != nil {
		return res
	}
	if len(has.Meta) == 0 && len(has.ResultType) == 0 && len(res) > 1 && res[0] == '{' {
		b := make([]byte, 0, len(res)+len(p.serverInfo)+96)
		b = append(b, `{"resultType":"complete","_meta":{"`+mcp.MetaKeyServerInfo+`":`...)
		b = append(b, p.serverInfo...)
		b = append(b, '}')
		if rest := bytes.TrimSpace(res[1:]); len(rest) > 0 && rest[0] != '}' {
			b = append(b, ',')
		}
		return append(b, res[1:]...)
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(res, &fields) != nil {
		return res
	}
	if len(has.ResultType) == 0 {
		fields["resultType"] = json.RawMessage(`"complete"`)
	}
	meta := map[string]json.RawMessage{}
	if len(has.Meta) > 0 && json.Unmarshal(has.Meta, &meta) != nil {
		return res
	}
	if _, ok := meta[mcp.MetaKeyServerInfo]; !ok {
		meta[mcp.MetaKeyServerInfo] = p.serverInfo
	}
	fields["_meta"], _ = json.Marshal(meta)
	out, err := json.Marshal(fields)
	if err != nil {
		return res
	}
	return out
}

func (p *Proxy) stdioMessage(ctx context.Context, sess *stdioSession, w *lineWriter, line []byte, requests *tracker) {
	h, k, bad := parseMessage(line)
	if bad != nil {
		w.error(bad.id, bad.code, bad.message, nil)
		return
	}
	if k == request && p.opts.SingleClient {
		p.learnClient(h)
	}
	switch k {
	case response:
		sess.answered(h)
		return
	case notification:
		switch h.Method {
		case string(mcp.MethodNotificationInitialized):
			sess.markInitialized()
		case string(mcp.MethodNotificationCancelled):
			// Every request of this session is tracked here, whichever
			// path serves it.
			if key, why, ok := cancelledID(h.Params); ok {
				sess.inflight.cancel(key, why)
			}
			return
		}
		p.srv.HandleMessage(ctx, line) // notifications answer nothing
		return
	}

	if h.Method == string(mcp.MethodInitialize) {
		sess.handshake.Store(true)
	}
	// Registered before anything waits, so that a cancellation sent right
	// after the request finds it.
	key, _ := idKey(h.ID)
	rctx, pend, ok := sess.inflight.start(ctx, key)
	if !ok {
		bad := errDuplicateID(h.ID)
		w.error(bad.id, bad.code, bad.message, nil)
		return
	}
	serve := func() []byte {
		if resp := p.srv.HandleMessage(rctx, line); resp != nil {
			if b, err := json.Marshal(resp); err == nil {
				return append(b, '\n')
			}
		}
		return nil
	}
	switch {
	case h.Method == string(mcp.MethodToolsCall):
		if cp, ok := directParams(h.Params, true); ok {
			serve = func() []byte { return p.directCall(rctx, sess, w, h.ID, cp) }
		} else if cp, ok := decodeCallParams(h.Params); ok && wantsTask(cp) {
			plain := serve
			serve = func() []byte {
				if !p.taskable(rctx, cp) {
					return plain()
				}
				return p.stdioTask(ctx, rctx, sess, w, h.ID, cp, requests)
			}
		}
	case isTaskMethod(h.Method):
		serve = func() []byte {
			line, _ := p.taskMethod(rctx, sess.SessionID(), h.Method, h.ID, h.Params)
			return line
		}
	case h.Method == string(mcp.MethodCompletionComplete):
		plain := serve
		serve = func() []byte {
			if line, ok := p.rawComplete(rctx, h.ID, h.Params); ok {
				return line
			}
			return plain()
		}
	}
	requests.Go(func() {
		out := serve()
		if sess.inflight.finish(key, pend) && out != nil {
			w.write(out)
		} // else the client cancelled it and expects no answer
	})
}

// directCall serves a tools/call without mcp-go's server: one decode of the
// envelope, the raw result spliced into the response line it returns.
func (p *Proxy) directCall(ctx context.Context, sess *stdioSession, w *lineWriter, id json.RawMessage, cp *toolCallParams) []byte {
	c, err := p.newCall(ctx, cp.Name, cp.Arguments, cp.Meta)
	if err != nil {
		return errorLine(id, err)
	}
	c.SessionID = sess.SessionID()
	c.Client = sess.clientInfo()
	if ci := cp.m.ClientInfo; ci != nil {
		c.Client = ClientInfo{Name: ci.Name, Version: ci.Version}
	}
	if lvl := cp.m.LogLevel; lvl.ShouldSendTo(lvl) && lvl != sess.GetLogLevel() {
		// A 2026-07-28 client sends its log level with each request
		// rather than logging/setLevel; mcp-go applies it to the requests
		// it serves, and this path must too, or the session keeps the
		// default and its logs are filtered by it.
		sess.SetLogLevel(lvl)
		p.setLevel(ctx, p.subs.setLevel(sess.SessionID(), lvl))
	}
	if token := cp.m.ProgressToken; token != nil {
		c.relay = func(progress float64, total *float64, message string) {
			w.progress(token, progress, total, message)
		}
		c.Progress = progressFor(c.relay)
	}
	res, err := p.call(ctx, c)
	if err != nil {
		return errorLine(id, err)
	}
	if cp.m.ProtocolVersion != "" {
		res = p.decorate(res)
	}
	return resultLine(id, res)
}

// stdioTask starts a task-augmented tools/call as a task of the session,
// which lives as long as the session (ctx), not the request (rctx).
func (p *Proxy) stdioTask(ctx, rctx context.Context, sess *stdioSession, w *lineWriter, id json.RawMessage, cp *toolCallParams, requests *tracker) []byte {
	c, err := p.newCall(rctx, cp.Name, cp.Arguments, cp.Meta)
	if err != nil {
		return errorLine(id, err)
	}
	c.SessionID = sess.SessionID()
	c.Client = sess.clientInfo()
	if token := cp.m.ProgressToken; token != nil {
		c.relay = func(progress float64, total *float64, message string) {
			w.progress(token, progress, total, message)
		}
	}
	res, err := p.startTask(ctx, sess.SessionID(), c, cp.Task, requests.Go)
	if err != nil {
		return errorLine(id, err)
	}
	return resultLine(id, res)
}

// lineWriter writes whole JSON-RPC lines, one at a time.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) write(b []byte) {
	l.mu.Lock()
	_, _ = l.w.Write(b) // a vanished client is noticed on the read side
	l.mu.Unlock()
}

func (l *lineWriter) json(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	l.write(append(b, '\n'))
}

func (l *lineWriter) error(id json.RawMessage, code int, message string, data json.RawMessage) {
	l.write(rpcErrorLine(id, code, message, data))
}

// resultLine is a JSON-RPC response carrying the raw result res.
func resultLine(id, res json.RawMessage) []byte {
	b := make([]byte, 0, len(res)+len(id)+40)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"result":`...)
	b = append(b, res...)
	return append(b, "}\n"...)
}

// errorLine is a JSON-RPC error response for err; an *RPCError keeps its
// code.
func errorLine(id json.RawMessage, err error) []byte {
	var rpc *RPCError
	if errors.As(err, &rpc) {
		return rpcErrorLine(id, rpc.Code, rpc.Message, rpc.Data)
	}
	return rpcErrorLine(id, mcp.INTERNAL_ERROR, err.Error(), nil)
}

func rpcErrorLine(id json.RawMessage, code int, message string, data json.RawMessage) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	msg, _ := json.Marshal(message)
	b := make([]byte, 0, len(msg)+len(id)+len(data)+64)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"error":{"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = append(b, msg...)
	if len(data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, data...)
	}
	return append(b, "}}\n"...)
}

func (l *lineWriter) progress(token json.RawMessage, progress float64, total *float64, message string) {
	b := make([]byte, 0, 128+len(message))
	b = append(b, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":`...)
	b = append(b, token...)
	b = append(b, `,"progress":`...)
	b = strconv.AppendFloat(b, progress, 'g', -1, 64)
	if total != nil {
		b = append(b, `,"total":`...)
		b = strconv.AppendFloat(b, *total, 'g', -1, 64)
	}
	if message != "" {
		m, _ := json.Marshal(message)
		b = append(b, `,"message":`...)
		b = append(b, m...)
	}
	l.write(append(b, "}}\n"...))
}

// stdioSession is the one client of a stdio front.
type stdioSession struct {
	id          string
	notes       chan mcp.JSONRPCNotification
	initialized atomic.Bool
	ready       chan struct{} // closed once initialized
	readyOnce   sync.Once
	handshake   atomic.Bool // an initialize request was seen: wait for notifications/initialized
	inflight    inflight    // every request in flight, by id
	w           *lineWriter
	asks        asks // the gate's requests to the client, waiting for its answer

	mu     sync.Mutex
	info   mcp.Implementation
	caps   mcp.ClientCapabilities
	level  mcp.LoggingLevel
	subs   map[string]bool
	hasLvl bool
}

var (
	_ server.SessionWithLogging               = (*stdioSession)(nil)
	_ server.SessionWithClientInfo            = (*stdioSession)(nil)
	_ server.SessionWithResourceSubscriptions = (*stdioSession)(nil)
)

func (s *stdioSession) SessionID() string { return s.id }
func (s *stdioSession) NotificationChannel() chan<- mcp.JSONRPCNotification {
	return s.notes
}

// Initialize marks the session ready for notifications, except during the
// initialize handshake, where the client's notifications/initialized does:
// nothing may reach the client before its initialize answer.
func (s *stdioSession) Initialize() {
	if !s.handshake.Load() {
		s.markInitialized()
	}
}

func (s *stdioSession) Initialized() bool { return s.initialized.Load() }

func (s *stdioSession) markInitialized() {
	s.initialized.Store(true)
	s.readyOnce.Do(func() { close(s.ready) })
}

func (s *stdioSession) SetLogLevel(level mcp.LoggingLevel) {
	s.mu.Lock()
	s.level, s.hasLvl = level, true
	s.mu.Unlock()
}

func (s *stdioSession) GetLogLevel() mcp.LoggingLevel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasLvl {
		return mcp.LoggingLevelError
	}
	return s.level
}

func (s *stdioSession) GetClientInfo() mcp.Implementation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.info
}

func (s *stdioSession) SetClientInfo(info mcp.Implementation) {
	s.mu.Lock()
	s.info = info
	s.mu.Unlock()
}

func (s *stdioSession) GetClientCapabilities() mcp.ClientCapabilities {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps
}

func (s *stdioSession) SetClientCapabilities(caps mcp.ClientCapabilities) {
	s.mu.Lock()
	s.caps = caps
	s.mu.Unlock()
}

func (s *stdioSession) clientInfo() ClientInfo {
	info := s.GetClientInfo()
	return ClientInfo{Name: info.Name, Version: info.Version}
}

func (s *stdioSession) SubscribeToResource(uri string) {
	s.mu.Lock()
	if s.subs == nil {
		s.subs = map[string]bool{}
	}
	s.subs[uri] = true
	s.mu.Unlock()
}

func (s *stdioSession) UnsubscribeFromResource(uri string) {
	s.mu.Lock()
	delete(s.subs, uri)
	s.mu.Unlock()
}

func (s *stdioSession) SubscribedResources() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.subs))
	for u := range s.subs {
		out = append(out, u)
	}
	return out
}

func (s *stdioSession) IsSubscribedToResource(uri string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[uri]
}

// asks are the requests the gate sent a stdio client, by id.
type asks struct {
	mu   sync.Mutex
	next int64
	m    map[string]chan reply
}

// ask sends the client a request and waits for its answer, or for ctx;
// a request given up on is cancelled at the client.
func (s *stdioSession) ask(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, error) {
	// Nothing but pings and logs may reach a client before it has
	// acknowledged its initialize answer.
	if !s.initialized.Load() {
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ch := make(chan reply, 1)
	s.asks.mu.Lock()
	s.asks.next++
	id := strconv.AppendInt(nil, s.asks.next, 10)
	key := "n" + string(id)
	if s.asks.m == nil {
		s.asks.m = make(map[string]chan reply)
	}
	s.asks.m[key] = ch
	s.asks.mu.Unlock()

	b := make([]byte, 0, len(params)+len(method)+64)
	b = append(b, `{"jsonrpc":"2.0","id":`...)
	b = append(b, id...)
	b = append(b, `,"method":`...)
	b = strconv.AppendQuote(b, method)
	if len(params) > 0 {
		b = append(b, `,"params":`...)
		b = append(b, params...)
	}
	s.w.write(append(b, "}\n"...))
	select {
	case r := <-ch:
		return r.result, r.err
	case <-ctx.Done():
		s.asks.mu.Lock()
		delete(s.asks.m, key)
		s.asks.mu.Unlock()
		cancel, _ := json.Marshal(map[string]any{"requestId": json.RawMessage(id), "reason": context.Cause(ctx).Error()})
		s.w.write(append(append([]byte(`{"jsonrpc":"2.0","method":"notifications/cancelled","params":`), cancel...), "}\n"...))
		return nil, ctx.Err()
	}
}

// answered delivers a client's response to the request it answers; one
// that answers nothing the gate asked is dropped.
func (s *stdioSession) answered(h head) {
	key, _ := idKey(h.ID)
	s.asks.mu.Lock()
	ch, ok := s.asks.m[key]
	delete(s.asks.m, key)
	s.asks.mu.Unlock()
	if !ok {
		return
	}
	if len(h.Error) > 0 {
		var d mcp.JSONRPCErrorDetails
		if json.Unmarshal(h.Error, &d) != nil {
			ch <- reply{err: &RPCError{Code: mcp.INTERNAL_ERROR, Message: "the client answered with an unreadable error"}}
			return
		}
		ch <- reply{err: rpcErrorFrom(&d)}
		return
	}
	ch <- reply{result: h.Result}
}
