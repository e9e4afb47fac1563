package policy

import (
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"
)

// DefaultAuthority is Entra's public cloud sign-in host.
const DefaultAuthority = "https://login.microsoftonline.com"

var (
	serveKeys     = []string{"auth"}
	serveAuthKeys = []string{"tenantId", "audience", "authority", "scope", "resource", "caFile"}
)

// ServeAuth is the serve.auth: section: how `mcp-gate serve` authenticates
// its HTTP clients. The zero value (no section) leaves the front open.
type ServeAuth struct {
	TenantID  string // the one tenant whose users may call (GUID)
	Audience  string // the gate's application id URI, or its client id
	Authority string // sign-in host, DefaultAuthority unless set
	// Scope is the scope clients request, e.g. api://mcp-gate/mcp.tools;
	// tokens must carry its last segment in scp. Empty: any scope.
	Scope string
	// Resource is the gate's public MCP URL, the RFC 9728 resource; empty:
	// taken from each request's Host.
	Resource string
	CAFile   string // extra CA (PEM) trusted for Authority, or empty
}

// Enabled reports whether serve.auth: is set.
func (a ServeAuth) Enabled() bool { return a.TenantID != "" }

// ServeAuth returns the serve.auth: section.
func (p *Policy) ServeAuth() ServeAuth { return p.serveAuth }

func (ps *parser) serve(n *yaml.Node) {
	ps.fields(n, "serve", serveKeys, func(key string, k, v *yaml.Node) {
		ps.serveAuth(v)
	})
}

func (ps *parser) serveAuth(n *yaml.Node) {
	const where = "serve.auth"
	a := &ps.p.serveAuth
	seen := map[string]bool{}
	ok := ps.fields(n, where, serveAuthKeys, func(key string, k, v *yaml.Node) {
		seen[key] = true
		at := join(where, key)
		switch key {
		case "tenantId":
			a.TenantID = ps.guid(v, at)
		case "audience":
			if s, ok := ps.str(v, at, false); ok && strings.TrimSpace(s) == "" {
				ps.errorf(v, "%s: must not be empty", at)
			} else {
				a.Audience = s
			}
		case "authority":
			a.Authority = ps.graphURL(v, at)
		case "scope":
			if s, ok := ps.str(v, at, false); ok && (strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t")) {
				ps.errorf(v, "%s: want one scope, e.g. api://mcp-gate/mcp.tools", at)
			} else {
				a.Scope = s
			}
		case "caFile":
			a.CAFile, _ = ps.str(v, at, false)
		case "resource":
			a.Resource = ps.graphURL(v, at)
			if u, err := url.Parse(a.Resource); err == nil && u.Path == "" {
				ps.errorf(v, "%s: name the MCP endpoint, e.g. https://gate.example.com/mcp", at)
			}
		}
	})
	if !ok {
		return
	}
	if !seen["tenantId"] {
		ps.errorf(n, "%s.tenantId: missing; name the tenant (a GUID) whose users may call", where)
	}
	if !seen["audience"] {
		ps.errorf(n, "%s.audience: missing; give the gate's application id URI (api://…) or client id", where)
	}
	if a.Authority == "" {
		a.Authority = DefaultAuthority
	}
}

// onBehalfOfNeedsAuth refuses credential: onbehalfof without serve.auth:
// it acts for each HTTP caller, whose token serve.auth validates.
func (ps *parser) onBehalfOfNeedsAuth() {
	if ps.p.approvals.Credential == CredentialOnBehalfOf && !ps.p.serveAuth.Enabled() && ps.credNode != nil {
		ps.errorf(ps.credNode, "approvals.credential onbehalfof acts for each HTTP caller with the token they present: it needs serve.auth (tenantId, audience) and mcp-gate serve")
	}
}
