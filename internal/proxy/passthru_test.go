package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// startServer serves s over Streamable HTTP in-process.
func startServer(t *testing.T, s *server.MCPServer) string {
	t.Helper()
	ts := httptest.NewServer(server.NewStreamableHTTPServer(s))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// rawRequest sends one request through c's transport and returns the raw
// result, as the client received it.
func rawRequest(t *testing.T, c *client.Client, method string, params any) json.RawMessage {
	t.Helper()
	resp, err := c.GetTransport().SendRequest(context.Background(), transport.JSONRPCRequest{
		JSONRPC: mcp.JSONRPC_VERSION, ID: mcp.NewRequestId(int64(1 << 30)), Method: method, Params: params,
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Error != nil {
		t.Fatalf("%s: %+v", method, resp.Error)
	}
	return resp.Result
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return out.String()
}

func TestToolSchemasPassThroughRaw(t *testing.T) {
	const input = `{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"urn:example:query","title":"Query","description":"A query.","$comment":"kept",` +
		`"type":"object","properties":{"z":{"type":"string","minLength":1},"a":{"$ref":"#/$defs/limit"}},` +
		`"oneOf":[{"required":["z"]},{"required":["a"]}],"anyOf":[{"minProperties":1}],"minProperties":1,"maxProperties":2,` +
		`"$defs":{"limit":{"type":"integer","minimum":0}},"additionalProperties":false}`
	const output = `{"type":"object","properties":{"rows":{"type":"array","items":{"type":"object"}}},"anyOf":[{"required":["rows"]}],"$comment":"out"}`
	const bare = `{"type":"object"}`
	up := server.NewMCPServer("up", "1", server.WithToolCapabilities(false))
	noop := func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return mcp.NewToolResultText("ok"), nil
	}
	up.AddTool(mcp.NewToolWithRawSchema("query", "Runs a query.", json.RawMessage(input)), noop)
	withOut := mcp.NewToolWithRawSchema("rows", "", json.RawMessage(bare))
	withOut.RawOutputSchema = json.RawMessage(output)
	up.AddTool(withOut, noop)
	url := startServer(t, up)

	wantIn := map[string]string{"query": input, "rows": bare}
	wantOut := map[string]string{"rows": output}
	p := newProxy(t, Options{Upstreams: []UpstreamConfig{{Name: "up", URL: url}}})
	for _, front := range []struct {
		name string
		c    func() *client.Client
	}{
		{"stdio", func() *client.Client { return stdioClient(t, p) }},
		{"http", func() *client.Client {
			return httpClient(t, p, client.WithProtocolVersion(mcp.ProtocolVersion20251125))
		}},
	} {
		t.Run(front.name, func(t *testing.T) {
			var res struct {
				Tools []struct {
					Name         string          `json:"name"`
					InputSchema  json.RawMessage `json:"inputSchema"`
					OutputSchema json.RawMessage `json:"outputSchema"`
				} `json:"tools"`
			}
			if err := json.Unmarshal(rawRequest(t, front.c(), "tools/list", nil), &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Tools) != len(wantIn) {
				t.Fatalf("%d tools, want %d", len(res.Tools), len(wantIn))
			}
			for _, tool := range res.Tools {
				if got := compact(t, tool.InputSchema); got != wantIn[tool.Name] {
					t.Errorf("%s inputSchema\n got %s\nwant %s", tool.Name, got, wantIn[tool.Name])
				}
				got := ""
				if len(tool.OutputSchema) > 0 {
					got = compact(t, tool.OutputSchema)
				}
				if got != wantOut[tool.Name] {
					t.Errorf("%s outputSchema\n got %s\nwant %s", tool.Name, got, wantOut[tool.Name])
				}
			}
		})
	}
}
