package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/mark3labs/mcp-go/mcp"
)

// modernCall decodes a sessionless tools/call of protocol version
// 2026-07-28 that the direct path may serve: one that mcp-go's server would
// accept by the checks it makes before calling a tool handler (a JSON body,
// no Last-Event-ID, the same supported version in the Mcp-Protocol-Version
// header and in _meta, the client's capabilities in _meta, Mcp-Method and
// Mcp-Name matching the body, and the Mcp-Param-* headers the tool's schema
// binds), and that needs no stream: no progress token. Every other request
// goes to mcp-go's server, which answers it as a direct server would,
// refusals included, so this path never has to word one.
func (p *Proxy) modernCall(r *http.Request, m *postedMessage) (*toolCallParams, bool) {
	if m.kind != request || m.head.Method != string(mcp.MethodToolsCall) || r.Header.Get(mcp.HeaderLastEventID) != "" {
		return nil, false
	}
	if !jsonBody(r) {
		return nil, false
	}
	version := r.Header.Get(mcp.HeaderProtocolVersion)
	if !mcp.IsModernProtocol(version) {
		return nil, false
	}
	cp, ok := directParams(m.head.Params, true)
	if !ok || cp.m.ProtocolVersion != version || cp.m.ProgressToken != nil {
		return nil, false
	}
	if mcp.ValidateStandardHeaders(r.Header.Get, version, mcp.MethodToolsCall, m.head.Params) != nil {
		return nil, false
	}
	if t := p.srv.GetTool(cp.Name); t != nil && mcp.ValidateParamHeadersLookup(headerLookup(r.Header), &t.Tool, m.head.Params) != nil {
		return nil, false
	}
	return cp, true
}

// headerLookup tells a header sent empty from one not sent, as the
// Mcp-Param-* checks need.
func headerLookup(h http.Header) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if v := h.Values(name); len(v) > 0 {
			return v[0], true
		}
		return "", false
	}
}

// jsonBody reports whether a POST declares the content type mcp-go's server
// requires of every message.
func jsonBody(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}

// callModern serves a call modernCall admitted and returns the HTTP status
// and the response. Without a session the request's own context bounds the
// call: a client cancels it by closing the stream. The result is stamped as
// 2026-07-28 requires, and an error carries the status that version gives
// its code.
func (d *directHTTP) callModern(ctx context.Context, id json.RawMessage, cp *toolCallParams) (int, []byte) {
	c, err := d.p.newCall(ctx, cp.Name, cp.Arguments, cp.Meta)
	if err == nil {
		if ci := cp.m.ClientInfo; ci != nil {
			c.Client = ClientInfo{Name: ci.Name, Version: ci.Version}
		}
		var res Result
		if res, err = d.p.call(ctx, c); err == nil {
			return http.StatusOK, resultLine(id, d.p.decorate(res))
		}
	}
	return modernStatus(err), errorLine(id, err)
}

// modernStatus is the HTTP status of an error answer to a 2026-07-28
// request: what mcp-go's server gives its code, and 429 for a call over its
// principal's limit, as on the 2025-11-25 path.
func modernStatus(err error) int {
	code := mcp.INTERNAL_ERROR
	var rpc *RPCError
	if errors.As(err, &rpc) {
		code = rpc.Code
	}
	switch code {
	case CodeTooManyCalls:
		return http.StatusTooManyRequests
	case mcp.METHOD_NOT_FOUND:
		return http.StatusNotFound
	case mcp.HEADER_MISMATCH, mcp.MISSING_REQUIRED_CLIENT_CAPABILITY, mcp.UNSUPPORTED_PROTOCOL_VERSION,
		mcp.INVALID_REQUEST, mcp.INVALID_PARAMS, mcp.PARSE_ERROR:
		return http.StatusBadRequest
	default:
		return http.StatusOK
	}
}
