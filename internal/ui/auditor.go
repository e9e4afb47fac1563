package ui

import (
	"context"

	"github.com/mcp-gate/mcp-gate/internal/audit"
)

// auditLog is where the gate's records go; *audit.Log is one.
type auditLog interface {
	Write(ctx context.Context, r audit.Record) error
	Err() error
}

// Auditor is the audit hook: it writes each record to Next and, once
// written, shows it on Board. A record the log refuses is not shown: the
// page shows what the audit log holds.
type Auditor struct {
	Next  auditLog
	Board *Board
}

// Write writes r to Next, then to the board.
func (a Auditor) Write(ctx context.Context, r audit.Record) error {
	if r.Time.IsZero() {
		r.Time = a.Board.cfg.Clock.Now() // the log stamps the time it is given
	}
	if err := a.Next.Write(ctx, r); err != nil {
		return err
	}
	a.Board.Record(r)
	return nil
}

// Err is Next's.
func (a Auditor) Err() error { return a.Next.Err() }
