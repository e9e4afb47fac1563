package policy

import (
	"slices"
	"strings"
	"testing"
)

const serveTenant = "00000000-1111-2222-3333-444444444444"

func TestServeAuth(t *testing.T) {
	tests := []struct {
		name, section string
		want          ServeAuth
	}{
		{"absent", "", ServeAuth{}},
		{"defaults", "serve:\n  auth: {tenantId: " + serveTenant + ", audience: api://mcp-gate}\n",
			ServeAuth{TenantID: serveTenant, Audience: "api://mcp-gate", Authority: DefaultAuthority}},
		{"all", "serve:\n  auth:\n    tenantId: " + serveTenant + "\n    audience: 0000aaaa-1111-4222-8333-444444444444\n" +
			"    authority: https://login.microsoftonline.us/\n    scope: api://mcp-gate/mcp.tools\n    resource: https://gate.example.com/mcp\n",
			ServeAuth{TenantID: serveTenant, Audience: "0000aaaa-1111-4222-8333-444444444444", Authority: "https://login.microsoftonline.us",
				Scope: "api://mcp-gate/mcp.tools", Resource: "https://gate.example.com/mcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _ := mustParse(t, "version: 1\n"+tt.section+"tools: {a: allow}\n")
			if got := p.ServeAuth(); got != tt.want {
				t.Fatalf("ServeAuth = %+v, want %+v", got, tt.want)
			}
			if got := p.ServeAuth().Enabled(); got != (tt.section != "") {
				t.Fatalf("Enabled = %v", got)
			}
		})
	}
}

func TestServeAuthProblems(t *testing.T) {
	const tail = "tools: {a: allow}\n"
	runProblemCases(t, []problemCase{
		{"unknown key", "version: 1\nserve: {auth: {tenant: x}}\n" + tail, []string{
			"p.yaml:2:15: serve.auth.tenantId: missing; name the tenant (a GUID) whose users may call",
			"p.yaml:2:15: serve.auth.audience: missing; give the gate's application id URI (api://…) or client id",
			`p.yaml:2:16: serve.auth: unknown key "tenant" (did you mean "tenantId"?); allowed: tenantId, audience, authority, scope, resource, caFile`,
		}},
		{"serve unknown key", "version: 1\nserve: {authn: {}}\n" + tail, []string{
			`p.yaml:2:9: serve: unknown key "authn" (did you mean "auth"?); allowed: auth`,
		}},
		{"onbehalfof without serve.auth or clientId", "version: 1\napprovals: {tenantId: " + serveTenant + ", credential: onbehalfof}\n" + tail, []string{
			"p.yaml:2:73: approvals.credential onbehalfof needs approvals.clientId: the application (client) id of the gate's app registration, whose credential is read from the environment: AZURE_CLIENT_SECRET (a client secret), MCP_GATE_CLIENT_CERTIFICATE_PATH (a certificate) or AZURE_FEDERATED_TOKEN_FILE (workload identity)",
			"p.yaml:2:73: approvals.credential onbehalfof acts for each HTTP caller with the token they present: it needs serve.auth (tenantId, audience) and mcp-gate serve",
		}},
		{"bad values", "version: 1\nserve:\n  auth:\n    tenantId: common\n    audience: \"\"\n    authority: http://login.example.com\n    scope: a b\n    resource: https://gate.example.com\n" + tail, []string{
			`p.yaml:4:15: serve.auth.tenantId: "common" is not a GUID; want 8-4-4-4-12 hex digits, e.g. 00000000-1111-2222-3333-444444444444`,
			"p.yaml:5:15: serve.auth.audience: must not be empty",
			"p.yaml:6:16: serve.auth.authority: http:// is allowed only for a loopback host (localhost, 127.0.0.1, ::1); use https://",
			"p.yaml:7:12: serve.auth.scope: want one scope, e.g. api://mcp-gate/mcp.tools",
			"p.yaml:8:15: serve.auth.resource: name the MCP endpoint, e.g. https://gate.example.com/mcp",
		}},
	})
}

func TestServeAuthRestartOnly(t *testing.T) {
	src := "version: 1\nserve: {auth: {tenantId: " + serveTenant + ", audience: api://a}}\ntools: {a: allow}\n"
	running, _ := mustParse(t, src)
	reloaded, _ := mustParse(t, strings.Replace(src, "api://a", "api://b", 1))
	if got := RestartOnly(running, reloaded); !slices.Equal(got, []string{"serve.auth.audience"}) {
		t.Fatalf("RestartOnly = %q", got)
	}
}
