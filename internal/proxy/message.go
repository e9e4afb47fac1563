package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/mark3labs/mcp-go/mcp"
)

// DefaultMaxMessageBytes bounds one client message (a stdio line, an HTTP
// request body) unless Options.MaxMessageBytes says otherwise.
const DefaultMaxMessageBytes = 16 << 20

// head is the part of a message needed to check and route it.
type head struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
}

// kind is what a valid client message is.
type kind int

const (
	request kind = iota
	notification
	response // to a request of ours: one relayed from an upstream, or the gate's own question
)

// invalid is why a message was refused, as a JSON-RPC error answer: id is
// the message's id when it could be read and is valid, else empty (null).
type invalid struct {
	id      json.RawMessage
	code    int
	message string
}

// parseMessage reads one JSON-RPC message as JSON-RPC 2.0 and both MCP
// protocol generations in use (2025-11-25, 2026-07-28) define it: one object
// (no batches), "jsonrpc":"2.0", an id that is a string or a number, a
// method, params that are an object.
func parseMessage(b []byte) (head, kind, *invalid) {
	var h head
	b = bytes.TrimSpace(b)
	switch {
	case len(b) > 0 && b[0] == '[' && json.Valid(b):
		return h, 0, &invalid{code: mcp.INVALID_REQUEST, message: "Invalid Request: batches are not supported (MCP removed JSON-RPC batching in 2025-06-18); send one message at a time"}
	case len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &h) != nil:
		if json.Valid(b) {
			return h, 0, &invalid{code: mcp.INVALID_REQUEST, message: "Invalid Request: expected one JSON-RPC message object with a string method"}
		}
		return h, 0, &invalid{code: mcp.PARSE_ERROR, message: "Parse error"}
	}
	var id json.RawMessage
	if len(h.ID) > 0 {
		if _, ok := idKey(h.ID); !ok {
			return h, 0, &invalid{code: mcp.INVALID_REQUEST, message: "Invalid Request: id must be a string or a number"}
		}
		id = h.ID
	}
	switch {
	case h.JSONRPC != mcp.JSONRPC_VERSION:
		return h, 0, &invalid{id: id, code: mcp.INVALID_REQUEST, message: `Invalid Request: "jsonrpc" must be "2.0"`}
	case h.Method == "" && id != nil && (len(h.Result) > 0 || len(h.Error) > 0):
		return h, response, nil
	case h.Method == "":
		return h, 0, &invalid{id: id, code: mcp.INVALID_REQUEST, message: "Invalid Request: no method"}
	case len(h.Params) > 0 && h.Params[0] != '{' && !bytes.Equal(h.Params, []byte("null")):
		return h, 0, &invalid{id: id, code: mcp.INVALID_REQUEST, message: "Invalid Request: params must be an object"}
	case id == nil:
		return h, notification, nil
	}
	return h, request, nil
}

// idKey is a request id's identity, the same for every spelling of one
// string or number; ok is false for anything else (null, objects, arrays,
// booleans), which JSON-RPC and MCP do not allow as ids.
func idKey(raw json.RawMessage) (key string, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return "s" + s, true
	case c == '-' || c >= '0' && c <= '9':
		if !json.Valid(raw) {
			return "", false
		}
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return "n" + strconv.FormatInt(n, 10), true
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return "", false // beyond float64: no client numbers its requests so
		}
		return "n" + strconv.FormatFloat(f, 'g', -1, 64), true
	}
	return "", false
}

// cancelledID is the request id a notifications/cancelled names.
func cancelledID(params json.RawMessage) (string, *CancelledError, bool) {
	var cn struct {
		RequestID json.RawMessage `json:"requestId"`
		Reason    string          `json:"reason"`
	}
	if json.Unmarshal(params, &cn) != nil {
		return "", nil, false
	}
	key, ok := idKey(cn.RequestID)
	return key, &CancelledError{Reason: cn.Reason}, ok
}

// errMessageTooLong reports a message over the limit; its text names the
// limit and how to change it.
type errMessageTooLong struct{ limit int64 }

func (e errMessageTooLong) Error() string {
	return fmt.Sprintf("Invalid Request: message longer than %d bytes, the limit set by --max-message-bytes; it was discarded", e.limit)
}

// readLine reads one newline-terminated line of at most limit bytes (the
// newline not counted). A longer line is read to its end and discarded,
// never held whole: tooLong reports it.
func readLine(r *bufio.Reader, limit int64) (line []byte, tooLong bool, err error) {
	for {
		frag, err := r.ReadSlice('\n')
		n := int64(len(frag))
		if err == nil {
			n-- // the newline
		}
		if !tooLong {
			if int64(len(line))+n > limit {
				tooLong, line = true, nil
			} else {
				line = append(line, frag...)
			}
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, tooLong, err
		}
	}
}

// inflight tracks a front's requests in flight by key (the id's identity,
// prefixed with its session over HTTP), so that the client's
// notifications/cancelled reaches the call whatever path it took.
type inflight struct{ m sync.Map } // key -> *pending

type pending struct{ cancel context.CancelCauseFunc }

// start registers key and returns the context the request runs under; ok
// is false when a request with the same key is still in flight (JSON-RPC
// ids must be unique, and a cancellation must not pick one of two).
func (f *inflight) start(ctx context.Context, key string) (context.Context, *pending, bool) {
	ctx, cancel := context.WithCancelCause(ctx)
	p := &pending{cancel: cancel}
	if _, dup := f.m.LoadOrStore(key, p); dup {
		cancel(nil)
		return nil, nil, false
	}
	return ctx, p, true
}

// finish unregisters key; false means the client cancelled the request, so
// it expects no answer.
func (f *inflight) finish(key string, p *pending) bool {
	p.cancel(nil)
	return f.m.CompareAndDelete(key, p)
}

// cancel cancels the request in flight under key, if there is one, with
// why as its context's cause: the gate tells a client's timeout from its
// user's choice by it.
func (f *inflight) cancel(key string, why *CancelledError) bool {
	p, ok := f.m.LoadAndDelete(key)
	if ok {
		p.(*pending).cancel(why)
	}
	return ok
}

// errDuplicateID answers a request whose id is in use by one in flight.
func errDuplicateID(id json.RawMessage) *invalid {
	return &invalid{id: id, code: mcp.INVALID_REQUEST, message: "Invalid Request: this id is already used by a request in flight; give each request its own id"}
}
