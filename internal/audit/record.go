// Package audit keeps mcp-gate's append-only audit trail: one JSON line per
// policy decision (and, for a call that is forwarded, a second line with how
// the upstream answered), each line carrying the SHA-256 of the line before
// it, so that changing, deleting or reordering lines shows when the file is
// checked with Verify, and a checkpoint beside the log that shows lines cut
// from its end. Argument values are recorded as their names and a digest
// unless the policy asks for them in clear; tokens are never recorded.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Decisions a policy can take.
const (
	DecisionAllow    = "allow"
	DecisionDeny     = "deny"
	DecisionActivate = "activate"
)

// Outcomes of a call, as the gate reports them. A call that is forwarded
// has two records with one trace id: OutcomeAdmitted, written before the call
// leaves the gate, then OutcomeForwarded or OutcomeError once the upstream
// has answered or failed. An admitted call with no second record is one
// whose answer the gate did not live (or could not record) to see. Every
// other outcome is a call's only record: nothing was forwarded.
const (
	OutcomeAdmitted  = "admitted"  // about to be sent to the upstream: written before it is
	OutcomeForwarded = "forwarded" // the upstream answered (its own tool errors included)
	OutcomeRefused   = "refused"   // denied by a rule or by PIM; nothing forwarded
	OutcomeReceipt   = "receipt"   // approval still pending when the wait ran out
	OutcomeCancelled = "cancelled" // the client gave up
	OutcomeError     = "error"     // the gate could not decide, or the upstream did not answer
)

// zeroHash is the Prev of the first line of a new log.
const zeroHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Record is one audit line. Message must not carry secrets: the gate puts
// only its own sentences there, never upstream or Graph payloads.
type Record struct {
	Time             time.Time `json:"time"` // written as RFC 3339 UTC
	TraceID          string    `json:"traceId,omitempty"`
	Principal        string    `json:"principal,omitempty"` // Entra object id
	Client           Client    `json:"client,omitzero"`
	Tool             string    `json:"tool"`
	Upstream         string    `json:"upstream,omitempty"`
	Rule             string    `json:"rule,omitempty"` // "policies.yaml:12"
	Decision         string    `json:"decision"`       // DecisionAllow, DecisionDeny or DecisionActivate
	Reason           string    `json:"reason,omitempty"`
	Role             string    `json:"role,omitempty"`   // the directory role, group or Azure role as the rule names it
	Kind             string    `json:"kind,omitempty"`   // role, group or azureRole
	Scope            string    `json:"scope,omitempty"`  // the Azure scope, for azureRole
	Access           string    `json:"access,omitempty"` // member or owner, for group
	RoleDefinitionID string    `json:"roleDefinitionId,omitempty"`
	RequestID        string    `json:"requestId,omitempty"` // PIM request id
	Outcome          string    `json:"outcome"`
	Message          string    `json:"message,omitempty"`
	WaitMS           int64     `json:"waitMs"`
	UpstreamMS       int64     `json:"upstreamMs"`
	ArgKeys          []string  `json:"argKeys,omitempty"`    // from ArgsDigest
	ArgsSHA256       string    `json:"argsSha256,omitempty"` // from ArgsDigest
	// Args holds the argument values in clear, only when the rule says
	// `audit.arguments: clear`.
	Args json.RawMessage `json:"args,omitempty"`
	// Elicited names the values the user gave through the client
	// (elicitation) rather than the model: "justification", "ticket",
	// "confirm" (the user confirmed this call). Absent in records of
	// calls that asked the user nothing, as in logs written before it.
	Elicited []string `json:"elicited,omitempty"`
	Prev     string   `json:"prev"` // hex SHA-256 of the previous line; set by Log.Write
}

// Client is the MCP client as it named itself in initialize.
type Client struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// isHexHash reports whether s is a lower-case hex SHA-256. (A regexp did
// this at a tenth of the cost of writing a record.)
func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := range len(s) {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// check reports what makes r unfit for the log. Log.Write and Verify share
// it, so the log never holds a line that Verify would reject.
func (r *Record) check() error {
	var missing []string
	if r.Time.IsZero() {
		missing = append(missing, "time")
	}
	if r.Tool == "" {
		missing = append(missing, "tool")
	}
	if r.Decision == "" {
		missing = append(missing, "decision")
	}
	if r.Outcome == "" {
		missing = append(missing, "outcome")
	}
	if r.Prev == "" {
		missing = append(missing, "prev")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing field %s", strings.Join(missing, ", "))
	}
	switch r.Decision {
	case DecisionAllow, DecisionDeny, DecisionActivate:
	default:
		return fmt.Errorf("unknown decision %q", r.Decision)
	}
	if !isHexHash(r.Prev) {
		return errors.New("prev is not a hex SHA-256")
	}
	if r.ArgsSHA256 != "" && !isHexHash(r.ArgsSHA256) {
		return errors.New("argsSha256 is not a hex SHA-256")
	}
	if len(r.Args) > 0 && !json.Valid(r.Args) {
		return errors.New("args is not valid JSON")
	}
	return nil
}
