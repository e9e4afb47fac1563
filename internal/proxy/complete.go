package proxy

import (
	"context"
	"encoding/json"

	"github.com/mark3labs/mcp-go/mcp"
)

// rawComplete serves completion/complete of the handshake protocol by
// relaying the owning upstream's answer as it sent it: mcp.Completion would
// drop fields such as "hasMore": false. ok is false when it does not serve
// the request (a 2026-07-28 request, a reference no upstream owns, an
// upstream without completions): mcp-go's server answers it then, as before.
func (p *Proxy) rawComplete(ctx context.Context, id, params json.RawMessage) (line []byte, ok bool) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(params, &fields) != nil {
		return nil, false
	}
	if meta, has := fields["_meta"]; has {
		var m map[string]json.RawMessage
		if json.Unmarshal(meta, &m) != nil {
			return nil, false
		}
		if _, modern := m[mcp.MetaKeyProtocolVersion]; modern {
			return nil, false
		}
		delete(m, "progressToken") // no progress of a completion is relayed
		if len(m) == 0 {
			delete(fields, "_meta")
		} else {
			fields["_meta"], _ = json.Marshal(m)
		}
	}
	var ref struct {
		Type string `json:"type"`
		Name string `json:"name"`
		URI  string `json:"uri"`
	}
	if json.Unmarshal(fields["ref"], &ref) != nil {
		return nil, false
	}
	var u *upstream
	switch ref.Type {
	case "ref/prompt":
		var r route
		if !p.lookup(ctx, func() bool { var found bool; r, found = p.routes.Load().prompts[ref.Name]; return found }) {
			return nil, false
		}
		u = r.up
		fields["ref"], _ = json.Marshal(mcp.PromptReference{Type: ref.Type, Name: r.name})
	case "ref/resource":
		if !p.lookup(ctx, func() bool { u = p.templateOwner(ref.URI); return u != nil }) {
			return nil, false
		}
	default:
		return nil, false
	}
	l, err := u.get(ctx)
	if err != nil || l.caps.Completions == nil {
		return nil, false
	}
	out, err := json.Marshal(fields)
	if err != nil {
		return nil, false
	}
	res, err := l.conn.call(ctx, idBase+u.ids.Add(1), string(mcp.MethodCompletionComplete), out)
	if err != nil {
		return errorLine(id, err), true
	}
	return resultLine(id, res), true
}
