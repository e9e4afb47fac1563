package policy

import "time"

// Every default of the policy file lives here, so the reference in
// docs/policy.md, the parser and the example file agree.
const (
	DefaultBackend        = "entra-pim"
	DefaultCredential     = "default"
	DefaultGraphURL       = "https://graph.microsoft.com/v1.0"
	DefaultARMURL         = "https://management.azure.com"
	DefaultGrant          = 15 * time.Minute
	DefaultPollInterval   = time.Second
	DefaultPollMaxBackoff = 30 * time.Second
	DefaultDeadline       = time.Hour
	DefaultGrantMargin    = 30 * time.Second
	DefaultRecheck        = time.Minute
	DefaultMaxBackground  = 100
	DefaultJustification  = "{{.Tool}} needs {{.Role}} (mcp-gate trace {{.TraceID}}): called by an AI agent"
	DefaultTicketSystem   = "mcp-gate"
	DefaultAuditPath      = "~/.mcp-gate/audit.jsonl"
	DefaultAuditArguments = ArgumentsHashed

	// MinRecheck is the shortest approvals.recheck: below it, re-reading
	// every cached grant from Graph costs more than it buys.
	MinRecheck = 5 * time.Second

	// maxDuration bounds every duration in the file: PIM grants longer than
	// a working day are a misconfiguration, and so are waits that long.
	maxDuration = 24 * time.Hour
)

// CredentialOnBehalfOf is the approvals.credential that acts for each
// HTTP caller, with a token exchanged for theirs.
const CredentialOnBehalfOf = "onbehalfof"

// Values allowed for approvals.backend, approvals.credential and
// audit.arguments.
var (
	backends    = []string{"entra-pim"}
	credentials = []string{"default", "azurecli", "devicecode", "browser", "managedidentity", "workloadidentity", "environment", "token", CredentialOnBehalfOf}
	argModes    = []string{ArgumentsHashed, ArgumentsClear}
)

// Audit argument modes.
const (
	ArgumentsHashed = "hashed"
	ArgumentsClear  = "clear"
)

func defaultApprovals() Approvals {
	return Approvals{
		Backend:        DefaultBackend,
		Credential:     DefaultCredential,
		GraphURL:       DefaultGraphURL,
		ARMURL:         DefaultARMURL,
		DefaultGrant:   DefaultGrant,
		PollInterval:   DefaultPollInterval,
		PollMaxBackoff: DefaultPollMaxBackoff,
		Deadline:       DefaultDeadline,
		GrantMargin:    DefaultGrantMargin,
		Recheck:        DefaultRecheck,
		MaxBackground:  DefaultMaxBackground,
		Justification:  DefaultJustification,
		TicketSystem:   DefaultTicketSystem,
	}
}

func defaultAudit() Audit {
	return Audit{Path: DefaultAuditPath, Arguments: DefaultAuditArguments}
}
