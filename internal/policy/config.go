package policy

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

func (ps *parser) approvals(n *yaml.Node) {
	a := &ps.p.approvals
	const where = "approvals"
	var tokenFile, armTokenFile, pollMax *yaml.Node
	ps.credNode = n
	ps.fields(n, where, approvalsKeys, func(key string, k, v *yaml.Node) {
		at := join(where, key)
		switch key {
		case "backend":
			a.Backend, _ = ps.oneOf(v, at, backends)
		case "tenantId":
			a.TenantID = ps.guid(v, at)
		case "principalId":
			a.PrincipalID = ps.guid(v, at)
		case "credential":
			ps.credNode = v
			a.Credential, _ = ps.oneOf(v, at, credentials)
		case "clientId":
			a.ClientID = ps.guid(v, at)
		case "tokenFile":
			tokenFile = v
			a.TokenFile, _ = ps.str(v, at, true)
		case "armTokenFile":
			armTokenFile = v
			a.ARMTokenFile, _ = ps.str(v, at, true)
		case "graphURL":
			a.GraphURL = ps.graphURL(v, at)
		case "armURL":
			a.ARMURL = ps.graphURL(v, at)
		case "graphCAFile":
			a.GraphCAFile, _ = ps.str(v, at, true)
		case "defaultGrant":
			a.DefaultGrant, _ = ps.duration(v, at, false)
		case "wait":
			// Empty, like absent, leaves the wait to the client's own limit.
			if v.Kind != yaml.ScalarNode || v.Value != "" {
				a.Wait, a.WaitSet = ps.duration(v, at, true)
			}
		case "pollInterval":
			a.PollInterval, _ = ps.duration(v, at, false)
		case "pollMaxBackoff":
			pollMax = v
			a.PollMaxBackoff, _ = ps.duration(v, at, false)
		case "deadline":
			a.Deadline, _ = ps.duration(v, at, false)
		case "grantMargin":
			a.GrantMargin, _ = ps.duration(v, at, true)
		case "settle":
			a.Settle, _ = ps.duration(v, at, true)
		case "recheck":
			if d, ok := ps.duration(v, at, false); ok && d < MinRecheck {
				ps.errorf(v, "%s: %s is below the minimum of %s", at, v.Value, MinRecheck)
			} else if ok {
				a.Recheck = d
			}
		case "maxBackground":
			if s, ok := ps.scalar(v, at, "a whole number"); ok {
				m, err := strconv.Atoi(s)
				if err != nil || m <= 0 || v.ShortTag() != "!!int" {
					ps.errorf(v, "%s: %s is not a whole number above 0", at, describe(v))
				} else {
					a.MaxBackground = m
				}
			}
		case "justification":
			if t, ok := ps.text(v, at); ok {
				ps.defaultJust = t
				a.Justification = v.Value
			}
		case "ticketSystem":
			if s, ok := ps.str(v, at, false); ok && strings.TrimSpace(s) == "" {
				ps.errorf(v, "%s: must not be empty", at)
			}
			a.TicketSystem = v.Value
		}
	})
	if tokenFile != nil && a.TokenFile != "" && a.Credential != "token" {
		ps.errorf(tokenFile, "approvals.tokenFile: only used with credential: token (credential is %q)", a.Credential)
	}
	if armTokenFile != nil && a.ARMTokenFile != "" && a.Credential != "token" {
		ps.errorf(armTokenFile, "approvals.armTokenFile: only used with credential: token (credential is %q)", a.Credential)
	}
	if a.Credential == CredentialOnBehalfOf && a.ClientID == "" {
		ps.errorf(ps.credNode, "approvals.credential onbehalfof needs approvals.clientId: the application (client) id of the gate's app registration, "+
			"whose credential is read from the environment: AZURE_CLIENT_SECRET (a client secret), MCP_GATE_CLIENT_CERTIFICATE_PATH (a certificate) "+
			"or AZURE_FEDERATED_TOKEN_FILE (workload identity)")
	}
	if (a.Credential == "browser" || a.Credential == "devicecode") && a.ClientID == "" {
		ps.errorf(ps.credNode, "approvals.credential %s needs approvals.clientId: the application (client) id of your organisation's app registration "+
			"(a public client with the delegated Microsoft Graph permissions %s; see docs/pim-client.md). "+
			"The Azure CLI's own app id cannot be given them (AADSTS65002)", a.Credential, strings.Join(PIMScopes, ", "))
	}
	if pollMax != nil && a.PollMaxBackoff > 0 && a.PollInterval > 0 && a.PollMaxBackoff < a.PollInterval {
		ps.errorf(pollMax, "approvals.pollMaxBackoff: %s is below pollInterval %s", a.PollMaxBackoff, a.PollInterval)
	}
}

// PIMScopes are the delegated Microsoft Graph permissions a token needs to
// activate Entra directory roles (package pim checks tokens against them).
var PIMScopes = []string{"RoleAssignmentSchedule.ReadWrite.Directory", "RoleEligibilitySchedule.Read.Directory", "RoleManagement.Read.Directory"}

// credentialFitsRoles warns when the credential cannot activate the Entra
// roles or PIM groups the rules name: the Azure CLI's Graph token is
// pre-authorized for a fixed set of scopes without the PIM ones. (It does
// serve Azure resource roles, through ARM.)
func (ps *parser) credentialFitsRoles() {
	const why = "the Azure CLI's Microsoft Graph token lacks RoleAssignmentSchedule.ReadWrite.Directory, so Graph refuses every activation " +
		"with 403 PermissionScopeNotGranted (and asking for the scope fails with AADSTS65002); use credential: browser or devicecode " +
		"with approvals.clientId, your organisation's app registration (docs/pim-client.md)"
	switch ps.p.approvals.Credential {
	case "azurecli":
		ps.warnf(ps.credNode, "approvals.credential: azurecli cannot activate Entra roles or PIM groups: %s", why)
	case "default":
		ps.warnf(ps.credNode, "approvals.credential: default ends in the Azure CLI on a desktop, which cannot activate Entra roles or PIM groups: %s", why)
	}
}

// graphURL accepts https, or http for a loopback host only (the emulator),
// so a token is never sent in clear over a network: for graphURL, armURL
// and the serve.auth URLs.
func (ps *parser) graphURL(n *yaml.Node, where string) string {
	s, ok := ps.str(n, where, false)
	if !ok {
		return ""
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https":
		ps.errorf(n, "%s: %q is not an absolute http(s) URL, e.g. %s", where, s, DefaultGraphURL)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		ps.errorf(n, "%s: http:// is allowed only for a loopback host (localhost, 127.0.0.1, ::1); use https://", where)
	case u.RawQuery != "" || u.Fragment != "":
		ps.errorf(n, "%s: must not have a query or fragment", where)
	}
	return strings.TrimRight(s, "/")
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (ps *parser) audit(n *yaml.Node) {
	a := &ps.p.audit
	ps.fields(n, "audit", auditKeys, func(key string, k, v *yaml.Node) {
		at := join("audit", key)
		switch key {
		case "path":
			if s, ok := ps.str(v, at, false); ok && strings.TrimSpace(s) == "" {
				ps.errorf(v, "%s: must not be empty", at)
			}
			a.Path = v.Value
		case "arguments":
			a.Arguments, _ = ps.oneOf(v, at, argModes)
		}
	})
}

func (ps *parser) upstreams(n *yaml.Node) {
	ps.pairs(n, "upstreams", func(k, v *yaml.Node) {
		name := k.Value
		where := "upstreams." + name
		switch {
		case !upstreamNameRE.MatchString(name):
			ps.errorf(k, "upstreams: name %q: use letters, digits, - and _, starting with a letter or digit", name)
		case strings.Contains(name, "__") || strings.HasSuffix(name, "_"):
			// a_'s tool x and a's tool _x would both be a___x.
			ps.errorf(k, "upstreams: name %q is ambiguous in tool names, which are UPSTREAM__TOOL: a name must not contain \"__\" or end with _", name)
		}
		u := Upstream{Name: name}
		var command, url bool
		ok := ps.fields(v, where, upstreamKeys, func(key string, _, fv *yaml.Node) {
			at := join(where, key)
			switch key {
			case "command":
				command = true
				u.Command = ps.command(fv, at)
			case "env":
				u.Env = ps.stringMap(fv, at, envNameRE, "an environment variable name")
			case "url":
				url = true
				u.URL = ps.upstreamURL(fv, at)
			case "headers":
				u.Headers = ps.stringMap(fv, at, headerNameRE, "an HTTP header name")
			case "timeout":
				u.Timeout, _ = ps.duration(fv, at, false)
			}
		})
		switch {
		case !ok:
		case command && url:
			ps.errorf(k, "%s: give either command or url, not both", where)
		case !command && !url:
			ps.errorf(k, "%s: missing command (a process to start) or url (a Streamable HTTP endpoint)", where)
		case command && u.Headers != nil:
			ps.errorf(k, "%s: headers are only used with url", where)
		case url && u.Env != nil:
			ps.errorf(k, "%s: env is only used with command", where)
		}
		ps.p.upstreams = append(ps.p.upstreams, u)
	})
}

func (ps *parser) command(n *yaml.Node, where string) []string {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		ps.errorf(n, "%s: want a non-empty list: the program and its arguments, e.g. [./server, --flag], got %s", where, describe(n))
		return nil
	}
	var argv []string
	for i, a := range n.Content {
		s, ok := ps.scalar(a, fmt.Sprintf("%s[%d]", where, i), "a string")
		if ok && i == 0 && strings.TrimSpace(s) == "" {
			ps.errorf(a, "%s: the program must not be empty", where)
		}
		argv = append(argv, s)
	}
	return argv
}

func (ps *parser) stringMap(n *yaml.Node, where string, nameRE *regexp.Regexp, what string) map[string]string {
	m := map[string]string{}
	ps.pairs(n, where, func(k, v *yaml.Node) {
		if !nameRE.MatchString(k.Value) {
			ps.errorf(k, "%s: %q is not %s", where, k.Value, what)
		}
		if s, ok := ps.str(v, join(where, k.Value), false); ok {
			m[k.Value] = s
		}
	})
	return m
}

// upstreamURL checks an upstream's endpoint. A URL holding ${VAR} is only
// checked for its scheme, since the proxy expands it at connect time.
func (ps *parser) upstreamURL(n *yaml.Node, where string) string {
	s, ok := ps.str(n, where, false)
	if !ok {
		return ""
	}
	if strings.Contains(s, "${") {
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
			ps.errorf(n, "%s: want an http:// or https:// URL", where)
		}
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		ps.errorf(n, "%s: %q is not an absolute http(s) URL", where, s)
	}
	return s
}
