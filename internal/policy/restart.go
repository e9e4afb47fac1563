package policy

import (
	"reflect"
	"slices"
	"strings"
)

// reloadedApprovals are the approvals: keys that are defaults of rules:
// they are part of each rule's decision, so they take effect with the
// rules on reload.
var reloadedApprovals = []string{"defaultGrant", "justification", "ticketSystem"}

// RestartOnly lists the settings of reloaded that differ from running's
// and take effect only when mcp-gate starts again, as keys in file order
// (approvals.wait, audit.arguments, upstreams.db): every key of approvals:
// but the rule defaults defaultGrant, justification and ticketSystem, every
// key of audit:, serve.auth: and ui:, and each entry of upstreams:. The rest (tools: and those
// defaults) takes effect on reload.
func RestartOnly(running, reloaded *Policy) []string {
	var out []string
	out = appendChanged(out, "approvals", approvalsKeys, running.approvals, reloaded.approvals)
	out = appendChanged(out, "audit", auditKeys, running.audit, reloaded.audit)
	out = appendChanged(out, "serve.auth", serveAuthKeys, running.serveAuth, reloaded.serveAuth)
	out = appendChanged(out, "ui", uiKeys, running.ui, reloaded.ui)
	was := map[string]Upstream{}
	for _, u := range running.upstreams {
		was[u.Name] = u
	}
	for _, u := range reloaded.upstreams {
		if old, ok := was[u.Name]; !ok || !reflect.DeepEqual(old, u) {
			out = append(out, "upstreams."+u.Name)
		}
		delete(was, u.Name)
	}
	for _, u := range running.upstreams {
		if _, removed := was[u.Name]; removed {
			out = append(out, "upstreams."+u.Name)
		}
	}
	return out
}

// appendChanged appends section.key for each key whose fields differ
// between the structs a and b: the field of the same name, ignoring case
// (tenantId is TenantID), and the one that says whether it was set
// (WaitSet for wait).
func appendChanged(out []string, section string, keys []string, a, b any) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for _, key := range keys {
		if section == "approvals" && slices.Contains(reloadedApprovals, key) {
			continue
		}
		for i := range va.NumField() {
			if fieldOf(va.Type().Field(i).Name, key) && !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
				out = append(out, section+"."+key)
				break
			}
		}
	}
	return out
}

// fieldOf reports whether the struct field name holds the setting key.
func fieldOf(name, key string) bool {
	return strings.EqualFold(name, key) || strings.EqualFold(name, key+"Set")
}
