package policy

import (
	"fmt"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"
)

// Kind is which of PIM's three activations a rule asks for. The zero value
// is the Entra directory role, the only kind older policies name.
type Kind uint8

const (
	KindRole      Kind = iota // an Entra directory role (Graph roleManagement/directory)
	KindGroup                 // membership or ownership of a PIM for Groups group (Graph identityGovernance)
	KindAzureRole             // an Azure RBAC role at a resource scope (ARM)
)

// String is the rule key that names the kind.
func (k Kind) String() string {
	switch k {
	case KindGroup:
		return "group"
	case KindAzureRole:
		return "azureRole"
	default:
		return "role"
	}
}

// Access is the relationship PIM for Groups activates.
type Access string

const (
	AccessMember Access = "member"
	AccessOwner  Access = "owner"
)

// Target is what an Activate decision needs active for the caller.
type Target struct {
	Kind Kind
	// Role is the directory role, group or Azure role as the rule names it:
	// a display name or an id (role definition id, group object id).
	Role   string
	Scope  string // the Azure resource scope, for KindAzureRole only
	Access Access // member or owner, for KindGroup only
}

// String names the target for people: in tool errors, tools/list notes
// and explain.
func (t Target) String() string {
	switch t.Kind {
	case KindGroup:
		return fmt.Sprintf("PIM group '%s' (%s)", t.Role, t.Access)
	case KindAzureRole:
		return fmt.Sprintf("Azure role '%s' at %s", t.Role, t.Scope)
	default:
		return fmt.Sprintf("PIM role '%s'", t.Role)
	}
}

var accessValues = []string{string(AccessMember), string(AccessOwner)}

// name reads a role, group or Azure role: a display name, or an id that
// must then be a well-formed GUID. give says what to write ("a PIM role
// display name or role definition id"), id what the GUID is.
func (ps *parser) name(n *yaml.Node, where, give, id string) (string, bool) {
	s, ok := ps.str(n, where, true)
	if !ok {
		return "", false
	}
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		ps.errorf(n, "%s: must not be empty; give %s", where, give)
		return "", false
	case looksLikeGUID(s) && !guidRE.MatchString(s):
		ps.errorf(n, "%s: %q looks like a %s but is not a GUID; want 8-4-4-4-12 hex digits", where, s, id)
		return "", false
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		ps.errorf(n, "%s: %q contains control characters; give %s", where, s, give)
		return "", false
	}
	return s, true
}

// scope reads an Azure resource scope: /subscriptions/{guid}, optionally
// /resourceGroups/{name}, optionally /providers/{namespace}/{type}/{name}
// (and nested type/name pairs). ARM compares scopes case-insensitively; the
// text is kept as written.
func (ps *parser) scope(n *yaml.Node, where string) (string, bool) {
	s, ok := ps.str(n, where, false)
	if !ok {
		return "", false
	}
	if why := scopeProblem(s); why != "" {
		ps.errorf(n, "%s: %q is not an Azure resource scope: %s; write /subscriptions/{id}, /subscriptions/{id}/resourceGroups/{name} or a resource id under it", where, s, why)
		return "", false
	}
	return s, true
}

// scopeProblem says what is wrong with an Azure resource scope, or "".
func scopeProblem(s string) string {
	if !strings.HasPrefix(s, "/") {
		return "it must start with /"
	}
	seg := strings.Split(s[1:], "/")
	for _, p := range seg {
		switch {
		case p == "":
			return "it has an empty segment (a doubled or trailing /)"
		case p == "." || p == "..":
			return "it has a . or .. segment"
		case strings.IndexFunc(p, func(r rune) bool {
			return unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune("?#%\\", r)
		}) >= 0:
			return fmt.Sprintf("segment %q has white space, control characters or one of ?#%%\\", p)
		}
	}
	if !strings.EqualFold(seg[0], "subscriptions") || len(seg) < 2 {
		return "it must begin with /subscriptions/{subscription id}"
	}
	if !guidRE.MatchString(seg[1]) {
		return fmt.Sprintf("subscription id %q is not a GUID", seg[1])
	}
	rest := seg[2:]
	if len(rest) > 0 && strings.EqualFold(rest[0], "resourceGroups") {
		if len(rest) < 2 {
			return "resourceGroups needs a name after it"
		}
		if why := resourceGroupProblem(rest[1]); why != "" {
			return why
		}
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return ""
	}
	if !strings.EqualFold(rest[0], "providers") || len(rest) < 4 {
		return "after the subscription or resource group comes /providers/{namespace}/{type}/{name}"
	}
	if len(rest[2:])%2 != 0 {
		return "a resource id is /providers/{namespace} then pairs of /{type}/{name}"
	}
	return ""
}

// resourceGroupProblem applies Azure's naming rule for resource groups:
// 1 to 90 letters, digits, _ - . ( ), not ending in a period.
func resourceGroupProblem(name string) string {
	if len([]rune(name)) > 90 {
		return "a resource group name has at most 90 characters"
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-.()", r) {
			return fmt.Sprintf("resource group name %q may hold only letters, digits, _ - . ( )", name)
		}
	}
	if strings.HasSuffix(name, ".") {
		return fmt.Sprintf("resource group name %q must not end in a period", name)
	}
	return ""
}
