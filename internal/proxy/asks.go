package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// canElicit reports whether the client behind ctx answers elicitation/create
// in form mode on its session: it declared the capability in initialize
// (an elicitation capability that names no mode means form) and speaks the
// handshake protocol, whose servers may send requests to the client.
func canElicit(ctx context.Context) bool {
	return !server.IsModernRequest(ctx) && sessionCanElicit(server.ClientSessionFromContext(ctx))
}

// sessionCanElicit is canElicit for a session, whatever its request: the
// relay's rules for an upstream's form elicitation hold for the gate's own.
func sessionCanElicit(s server.ClientSession) bool {
	if _, ok := s.(server.SessionWithElicitation); !ok {
		return false
	}
	return permits(s, string(mcp.MethodElicitationCreate), nil) == nil
}

// elicit is a Call's Elicit for a client that can ask its user: ctx, the
// call's, names the session (and, over Streamable HTTP, the request whose
// stream carries the question).
func (p *Proxy) elicit(ctx context.Context, params mcp.ElicitationParams) (*mcp.ElicitationResult, error) {
	return p.srv.RequestElicitation(ctx, mcp.ElicitationRequest{Request: mcp.Request{Method: string(mcp.MethodElicitationCreate)}, Params: params})
}

// withAsks returns schema, an inputSchema, with the properties asks added
// (those it does not declare already), every other byte kept; and the
// names of the properties the schema declares itself.
func withAsks(schema json.RawMessage, asks []AskArg) (json.RawMessage, []string, error) {
	dec := json.NewDecoder(bytes.NewReader(schema))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("inputSchema is not a JSON object")
	}
	propsEnd := -1 // offset of the properties object's closing brace
	var declared map[string]json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if tok == "properties" {
			if err := json.Unmarshal(v, &declared); err != nil || v[0] != '{' {
				return nil, nil, fmt.Errorf("inputSchema.properties is not an object")
			}
			propsEnd = int(dec.InputOffset()) - 1
		}
	}
	var names []string
	for k := range declared {
		names = append(names, k)
	}
	slices.Sort(names)
	var add []byte
	for _, a := range asks {
		if _, ok := declared[a.Name]; ok {
			continue
		}
		if len(add) > 0 || len(declared) > 0 {
			add = append(add, ',')
		}
		prop, _ := json.Marshal(map[string]string{"type": "string", "description": a.Description})
		name, _ := json.Marshal(a.Name)
		add = append(append(append(add, name...), ':'), prop...)
	}
	if len(add) == 0 {
		return schema, names, nil
	}
	out := make([]byte, 0, len(schema)+len(add)+16)
	if propsEnd >= 0 {
		out = append(out, schema[:propsEnd]...)
		out = append(out, add...)
		return append(out, schema[propsEnd:]...), names, nil
	}
	open := bytes.IndexByte(schema, '{') + 1
	out = append(out, schema[:open]...)
	out = append(out, `"properties":{`...)
	out = append(out, add...)
	out = append(out, '}')
	if rest := bytes.TrimSpace(schema[open:]); len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, schema[open:]...), names, nil
}

// showAsks puts into a tools/list answer, for a client that cannot ask its
// user, the inputSchemas with the arguments the Middleware takes instead.
func (p *Proxy) showAsks(ctx context.Context, rt *routeTable, tools []mcp.Tool) {
	if canElicit(ctx) {
		return
	}
	for i := range tools {
		if s := rt.tools[tools[i].Name].askSchema; s != nil {
			tools[i].RawInputSchema = s
		}
	}
}
