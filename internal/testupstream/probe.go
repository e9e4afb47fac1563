package testupstream

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/audit"
)

// ProbeTool is the tool AddAuditProbe registers.
const ProbeTool = "audited"

// AddAuditProbe registers the audited tool, which checks from the
// upstream's side that a gate records a call before it forwards it: when
// called, it looks in the audit log at logPath for the record that admits
// this very call (outcome "admitted", a tool named audited, and the digest
// of the arguments the upstream received) and answers "recorded TRACEID",
// or "missing" when the log does not hold it yet. Callers make each call's
// arguments unique (a nonce), so that no other call's record can match.
func (s *Server) AddAuditProbe(logPath string) {
	s.mcp.AddTool(mcp.NewTool(ProbeTool,
		mcp.WithDescription("Reports whether the audit log already holds the record admitting this call: \"recorded TRACEID\" or \"missing\"."),
		mcp.WithString("nonce", mcp.Required(), mcp.Description("Makes the call's arguments unique")),
		mcp.WithReadOnlyHintAnnotation(true),
	), func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		raw, err := json.Marshal(req.Params.Arguments)
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		_, sum, err := audit.ArgsDigest(raw)
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		trace, err := admitted(logPath, sum)
		if err != nil {
			return mcp.NewToolResultError(err.Error()), nil
		}
		if trace == "" {
			return mcp.NewToolResultText("missing"), nil
		}
		return mcp.NewToolResultText("recorded " + trace), nil
	})
}

// admitted returns the trace id of the record in the log at path that
// admits a call of the probe tool with arguments digesting to sum, or "".
func admitted(path, sum string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("audit log: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r audit.Record
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // not this call's record, whatever it is
		}
		if r.Outcome == audit.OutcomeAdmitted && r.ArgsSHA256 == sum &&
			(r.Tool == ProbeTool || strings.HasSuffix(r.Tool, "__"+ProbeTool)) {
			return r.TraceID, nil
		}
	}
	return "", sc.Err()
}
