package proxy

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// subscriptions records which resources each client session subscribed
// to, for the sessions whose own type does not (Streamable HTTP, SSE), so
// that an upstream's resources/updated reaches only those sessions; and
// the log level each session set, registered or not yet.
type subscriptions struct {
	mu     sync.Mutex
	bySID  map[string]map[string]struct{}
	levels map[string]mcp.LoggingLevel
}

// setLevel records sid's log level and returns the most verbose level any
// session asked for.
func (s *subscriptions) setLevel(sid string, level mcp.LoggingLevel) mcp.LoggingLevel {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.levels == nil {
		s.levels = make(map[string]mcp.LoggingLevel)
	}
	s.levels[sid] = level
	most := level
	for _, lv := range s.levels {
		if most.ShouldSendTo(lv) {
			most = lv
		}
	}
	return most
}

func (s *subscriptions) set(sid, uri string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySID == nil {
		s.bySID = make(map[string]map[string]struct{})
	}
	uris := s.bySID[sid]
	switch {
	case on && uris == nil:
		s.bySID[sid] = map[string]struct{}{uri: {}}
	case on:
		uris[uri] = struct{}{}
	default:
		delete(uris, uri)
		if len(uris) == 0 {
			delete(s.bySID, sid)
		}
	}
}

func (s *subscriptions) has(sid, uri string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.bySID[sid][uri]
	return ok
}

// forget drops a session's subscriptions when the session ends.
func (s *subscriptions) forget(sid string) {
	s.mu.Lock()
	delete(s.bySID, sid)
	delete(s.levels, sid)
	s.mu.Unlock()
}

// record notes a client session's subscribe or unsubscribe.
func (p *Proxy) record(ctx context.Context, uri string, on bool) {
	cs := server.ClientSessionFromContext(ctx)
	switch s := cs.(type) {
	case nil:
	case server.SessionWithResourceSubscriptions:
		// mcp-go has recorded it in the session itself
	default:
		p.subs.set(s.SessionID(), uri, on)
	}
}

func (p *Proxy) subscribed(cs server.ClientSession, uri string) bool {
	if s, ok := cs.(server.SessionWithResourceSubscriptions); ok {
		return s.IsSubscribedToResource(uri)
	}
	return p.subs.has(cs.SessionID(), uri)
}

// relay sends an upstream notification to the client sessions it concerns:
// resources/updated to the sessions subscribed to that URI, a log message
// to the session whose call produced it, anything else to every client.
// An upstream's log message names no request, so it is told to be a call's
// by the calls in flight at that upstream, or ended within progressGrace
// (from, nil when unknown): when all are one principal's, it goes to the
// sessions behind them (one user's sessions may see each other's logs;
// clients such as the conformance suite run several at once); when none is
// in flight, it is the upstream's own and goes to the sessions whose
// logging/setLevel admits its level; when calls of several principals are
// in flight, whose it is cannot be told and it is dropped (with one client,
// the stdio front, it goes to that client), since a guess could show one
// user's log to another.
func (p *Proxy) relay(method string, params json.RawMessage, from *callers) {
	var fields map[string]any
	if len(params) > 0 && json.Unmarshal(params, &fields) != nil {
		return
	}
	var to func(server.ClientSession) bool
	switch mcp.MCPMethod(method) {
	case mcp.MethodNotificationResourceUpdated:
		uri, _ := fields["uri"].(string)
		to = func(cs server.ClientSession) bool { return p.subscribed(cs, uri) }
	case mcp.MethodNotificationMessage:
		lvl, _ := fields["level"].(string)
		level := mcp.LoggingLevel(lvl)
		admits := func(cs server.ClientSession) bool {
			l, ok := cs.(server.SessionWithLogging)
			return ok && level.ShouldSendTo(l.GetLogLevel())
		}
		to = admits
		if sessions, one := from.onePrincipal(); one {
			to = func(cs server.ClientSession) bool { return sessions[cs.SessionID()] && admits(cs) }
		} else if from.busy() && !p.opts.SingleClient {
			p.log.Debug("log message not relayed: calls of several principals are in flight at its upstream", "level", lvl)
			return
		}
	default:
		p.srv.SendNotificationToAllClients(method, fields)
		return
	}
	p.sessions.Range(func(k, v any) bool {
		if cs := v.(*liveSession).ClientSession; to(cs) {
			if err := p.srv.SendNotificationToSpecificClient(k.(string), method, fields); err != nil {
				p.log.Debug("notification not delivered", "method", method, "err", err)
			}
		}
		return true
	})
}

// upstreamLevel records the level a session set and returns the level to
// ask of upstreams: the most verbose any live session asked for. Each
// session then gets only what its own level admits (relay): one client's
// setLevel does not change what another receives.
func (p *Proxy) upstreamLevel(ctx context.Context, asked mcp.LoggingLevel) mcp.LoggingLevel {
	sid := ""
	if cs := server.ClientSessionFromContext(ctx); cs != nil {
		sid = cs.SessionID()
	}
	return p.subs.setLevel(sid, asked)
}
