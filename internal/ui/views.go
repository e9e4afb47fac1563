package ui

import (
	"slices"
	"strings"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/audit"
)

// Waiting is an activation waiting for approval: /ui/api/waiting.
type Waiting struct {
	target
	RequestID string        `json:"requestId,omitempty"` // empty until PIM has the request
	Status    string        `json:"status,omitempty"`    // PIM's, e.g. PendingApproval
	Since     time.Time     `json:"since"`               // when the activation was asked for
	Calls     []WaitingCall `json:"calls"`               // the calls waiting on it now
	Receipts  int           `json:"receipts"`            // calls answered with a receipt while it waited
	Links     Links         `json:"links"`
}

// WaitingCall is one call waiting on an activation.
type WaitingCall struct {
	TraceID string    `json:"traceId"`
	Tool    string    `json:"tool"`
	Since   time.Time `json:"since"`
}

// Granted is a grant that admits calls: /ui/api/granted.
type Granted struct {
	target
	RequestID string    `json:"requestId,omitempty"`
	Since     time.Time `json:"since"`
	Until     time.Time `json:"until"`
	Calls     int       `json:"calls"` // calls forwarded on it
}

// Decided is one decision, with its upstream's outcome once known:
// /ui/api/decided.
type Decided struct {
	Time       time.Time `json:"time"`
	TraceID    string    `json:"traceId,omitempty"`
	Principal  string    `json:"principal,omitempty"`
	Tool       string    `json:"tool"`
	Decision   string    `json:"decision"`
	Rule       string    `json:"rule,omitempty"` // file:line
	Role       string    `json:"role,omitempty"`
	Kind       string    `json:"kind,omitempty"`
	RequestID  string    `json:"requestId,omitempty"`
	Outcome    string    `json:"outcome"`
	Message    string    `json:"message,omitempty"`
	WaitMS     int64     `json:"waitMs"`
	UpstreamMS int64     `json:"upstreamMs"`
}

func decidedOf(r audit.Record) Decided {
	return Decided{
		Time: r.Time, TraceID: r.TraceID, Principal: r.Principal, Tool: r.Tool, Decision: r.Decision, Rule: r.Rule,
		Role: r.Role, Kind: r.Kind, RequestID: r.RequestID, Outcome: r.Outcome, Message: r.Message, WaitMS: r.WaitMS, UpstreamMS: r.UpstreamMS,
	}
}

// Viewer is who looks at the board.
type Viewer struct {
	// Principal is the viewer's Entra object id; empty with All.
	Principal string
	// All: the viewer sees every principal's items (no serve.auth, or an
	// admin), not only their own.
	All bool
}

func (v Viewer) sees(principal string) bool {
	return v.All || principal != "" && strings.EqualFold(principal, v.Principal)
}

// Filter narrows the decisions shown. An empty field matches anything.
type Filter struct {
	Tool, Role, Outcome, Trace string
}

func (f Filter) match(d Decided) bool {
	return (f.Tool == "" || d.Tool == f.Tool) && (f.Role == "" || d.Role == f.Role) &&
		(f.Outcome == "" || d.Outcome == f.Outcome) && (f.Trace == "" || d.TraceID == f.Trace)
}

// State is everything the page shows at one moment.
type State struct {
	Now     time.Time `json:"now"`
	Waiting []Waiting `json:"waiting"`
	Granted []Granted `json:"granted"`
	Decided []Decided `json:"decided"` // newest first
}

// State returns what v may see now, decisions narrowed by f.
func (b *Board) State(v Viewer, f Filter) State {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.prune()
	st := State{Now: b.cfg.Clock.Now(), Waiting: []Waiting{}, Granted: []Granted{}, Decided: []Decided{}}
	for _, p := range b.pending {
		if !v.sees(p.Principal) {
			continue
		}
		w := Waiting{target: p.target, RequestID: p.progress.RequestID, Status: p.progress.Status, Since: p.since,
			Receipts: p.receipts, Calls: []WaitingCall{}, Links: portalLinks(p.Kind)}
		for _, c := range p.calls {
			w.Calls = append(w.Calls, c)
		}
		slices.SortFunc(w.Calls, func(a, b WaitingCall) int { return a.Since.Compare(b.Since) })
		st.Waiting = append(st.Waiting, w)
	}
	slices.SortFunc(st.Waiting, func(a, b Waiting) int { return a.Since.Compare(b.Since) })
	for _, h := range b.granted {
		if v.sees(h.Principal) {
			st.Granted = append(st.Granted, Granted{target: h.target, RequestID: h.grant.RequestID, Since: h.grant.Start, Until: h.grant.End, Calls: h.calls})
		}
	}
	slices.SortFunc(st.Granted, func(a, b Granted) int { return a.Until.Compare(b.Until) })
	for i := len(b.decided) - 1; i >= 0; i-- {
		if d := b.decided[i]; v.sees(d.Principal) && f.match(d) {
			st.Decided = append(st.Decided, d)
		}
	}
	return st
}
