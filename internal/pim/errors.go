package pim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// Sentinel errors, checkable with errors.Is.
var (
	ErrInvalidPrincipal = errors.New("pim: the principal must be an Entra object id (GUID)")
	ErrNotEligible      = errors.New("pim: not eligible")
	ErrRoleNotFound     = errors.New("pim: role not found")
	ErrThrottled        = errors.New("pim: Microsoft Graph is throttling requests")
	ErrUnreachable      = errors.New("pim: Microsoft Graph is unreachable")
	ErrAuth             = errors.New("pim: could not get a Microsoft Graph token")
)

// GraphError is an error answer from Graph (an OData error body) or, with
// ARM set, from Azure Resource Manager, whose body has the same
// {"error":{"code","message"}} shape.
type GraphError struct {
	ARM         bool // Azure Resource Manager answered, not Graph
	StatusCode  int
	Code        string // OData error code, e.g. RoleAssignmentRequestPolicyValidationFailed
	Message     string
	RequestID   string        // innerError.request-id (for Microsoft support)
	FailedRules []string      // for RoleAssignmentRequestPolicyValidationFailed
	RetryAfter  time.Duration // from the Retry-After header, when sent
	Scope       string        // the delegated permission the refused request needs
	Missing     []string      // on a 403: the permissions mcp-gate needs that the token's scp lacks
	// Claims is the claims challenge a token must meet for the request to
	// pass: the one in an authentication-context refusal, or MFA for a
	// refusal by MfaRule alone.
	Claims string
}

func (e *GraphError) Error() string {
	var b strings.Builder
	api := "Graph"
	if e.ARM {
		api = "ARM"
	}
	fmt.Fprintf(&b, "pim: %s answered %d", api, e.StatusCode)
	if e.Code != "" {
		fmt.Fprintf(&b, " %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request-id %s)", e.RequestID)
	}
	return b.String()
}

// Is makes a throttling answer match ErrThrottled.
func (e *GraphError) Is(target error) bool {
	return target == ErrThrottled && isThrottleStatus(e.StatusCode)
}

// transient reports whether asking again later may succeed.
func (e *GraphError) transient() bool {
	return isThrottleStatus(e.StatusCode) || e.StatusCode >= 500
}

// Policy rule names are words ending in "Rule", e.g.
// `The following policy rules failed: ["ExpirationRule","MfaRule"]`.
var ruleName = regexp.MustCompile(`\b[A-Z][A-Za-z]*Rule\b`)

func newGraphError(resp *http.Response, body []byte, now time.Time) *GraphError {
	e := &GraphError{StatusCode: resp.StatusCode, RequestID: requestID(resp.Header), Scope: scopeFor(resp.Request)}
	var odata struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &odata) == nil {
		e.Code, e.Message = odata.Error.Code, odata.Error.Message
		if odata.Error.InnerError.RequestID != "" {
			e.RequestID = odata.Error.InnerError.RequestID
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	switch e.Code {
	case "RoleAssignmentRequestPolicyValidationFailed":
		e.FailedRules = ruleName.FindAllString(e.Message, -1)
		if len(e.FailedRules) > 0 && !slices.ContainsFunc(e.FailedRules, func(r string) bool { return r != "MfaRule" }) {
			e.Claims = mfaClaims
		}
	case codeAcrs:
		e.Claims = claimsIn(e.Message)
	}
	if ra, ok := retryAfter(resp.Header.Get("Retry-After"), now); ok {
		e.RetryAfter = ra
	}
	return e
}

var ruleMessages = map[string]string{
	"JustificationRule": "this role requires a justification: set `justification` on the policy rule (or approvals.justification)",
	"TicketingRule":     "this role requires ticket information: set `ticket: required` on the policy rule and pass a ticket number",
	"MfaRule":           "this role requires multi-factor authentication (MFA) on activation: sign in again with MFA (`mcp-gate login`) and call again",
	"ExpirationRule":    "the requested grant is longer than the role allows: lower `grant` on the policy rule (or approvals.defaultGrant)",
	"EligibilityRule":   "you are not eligible for this role (or your eligibility has expired): ask an administrator for an eligible assignment",
}

var codeMessages = map[string]string{
	"RoleAssignmentExists":         "the role is already active for you: call again",
	"PendingRoleAssignmentRequest": "a request for this role is already waiting: approve it (or cancel it) in the Entra PIM portal, then call again",
	"RoleNotFound":                 "the role does not exist in this tenant: check the role name or id in the policy file",
	"SubjectNotFound":              "the principal does not exist in this tenant: check approvals.principalId and approvals.tenantId",
	codeAcrs:                       "this role requires a Conditional Access authentication context: sign in again satisfying it (`mcp-gate login`) and call again",
}

// UserMessage says what went wrong and what the user can do about it.
// Unknown codes keep Graph's message.
func (e *GraphError) UserMessage() string {
	if len(e.FailedRules) > 0 {
		parts := make([]string, 0, len(e.FailedRules))
		for _, r := range e.FailedRules {
			if m, ok := ruleMessages[r]; ok {
				parts = append(parts, m)
			} else {
				parts = append(parts, fmt.Sprintf("the role's PIM policy rule %s refused the request", r))
			}
		}
		return strings.Join(parts, "; ")
	}
	if m, ok := codeMessages[e.Code]; ok {
		return m
	}
	if e.ARM {
		return e.armMessage()
	}
	switch {
	case isThrottleStatus(e.StatusCode):
		return "Microsoft Graph is throttling requests: wait a minute and call again"
	case e.StatusCode == http.StatusUnauthorized:
		return "Microsoft Graph rejected the sign-in token: sign in again (`mcp-gate login`) and call again"
	case e.StatusCode == http.StatusForbidden:
		return e.permissionMessage()
	}
	return e.Message
}

// armMessage explains an ARM refusal that has no message of its own.
func (e *GraphError) armMessage() string {
	switch {
	case isThrottleStatus(e.StatusCode):
		return "Azure Resource Manager is throttling requests: wait a minute and call again"
	case e.StatusCode == http.StatusUnauthorized:
		return "Azure Resource Manager rejected the sign-in token (" + e.Code + "): the credential must give a token for " + ARMScope +
			" (with credential: token, set approvals.armTokenFile or " + ARMTokenEnv + "); sign in again and call again"
	case e.StatusCode == http.StatusForbidden:
		return "Azure Resource Manager refused the call (" + e.Code + ": " + e.Message + "): check that the signed-in user is approvals.principalId " +
			"and that the scope in the policy is right"
	case e.Code == "FailedAsResourceIsLocked":
		return "the resource is locked, so PIM cannot assign the role on it: ask its owner to remove the lock, then call again"
	}
	return e.Message
}

// codeAcrs is Graph's refusal of a token without the authentication
// context a role requires.
const codeAcrs = "RoleAssignmentRequestAcrsValidationFailed"

// mfaClaims asks Entra for an access token whose amr says MFA was done.
const mfaClaims = `{"access_token":{"amr":{"essential":true,"values":["mfa"]}}}`

// claimsStart finds a claims request in a message, raw or URL-encoded.
var claimsStart = regexp.MustCompile(`\{\s*"access_token"`)

// claimsIn returns the claims challenge a Graph message carries, compacted,
// or "" when it has none.
func claimsIn(msg string) string {
	candidates := []string{msg}
	if u, err := url.QueryUnescape(msg); err == nil && u != msg {
		candidates = append(candidates, u)
	}
	for _, s := range candidates {
		loc := claimsStart.FindStringIndex(s)
		if loc == nil {
			continue
		}
		var raw json.RawMessage
		if json.NewDecoder(strings.NewReader(s[loc[0]:])).Decode(&raw) != nil {
			continue
		}
		var b bytes.Buffer
		if json.Compact(&b, raw) == nil {
			return b.String()
		}
	}
	return ""
}

// fixPermissions says how to get a token with the PIM permissions.
const fixPermissions = "mcp-gate must sign in through your organisation's app registration that has these delegated Microsoft Graph permissions " +
	"with admin consent: set approvals.clientId to its application id and credential: browser or devicecode, then run `mcp-gate login` " +
	"(the Azure CLI's token can never carry it; see docs/pim-client.md)"

// permissionMessage explains a 403: which delegated permission the call
// needs and how to get a token that has it.
func (e *GraphError) permissionMessage() string {
	scope := "permission " + e.Scope
	switch {
	case len(e.Missing) > 1:
		scope = "permissions " + strings.Join(e.Missing, ", ")
	case len(e.Missing) == 1:
		scope = "permission " + e.Missing[0]
	case e.Scope == "":
		scope = "permission " + ScopeActivate
	}
	if e.Code == "Authorization_RequestDenied" {
		return fmt.Sprintf("Microsoft Graph refused the call (Authorization_RequestDenied: %s): either the signed-in user is not approvals.principalId, "+
			"or the token lacks the delegated %s; for the latter, %s", e.Message, scope, fixPermissions)
	}
	code := e.Code
	if code == "" {
		code = "403"
	}
	return fmt.Sprintf("Microsoft Graph refused the call (%s): the sign-in token lacks the delegated %s; %s", code, scope, fixPermissions)
}

// RefusedError says PIM finished a request without granting the role.
type RefusedError struct {
	Status    string // Denied, Failed, Canceled, Revoked, TimedOut, AdminDenied, Invalid
	RequestID string
	Role      string
	Target    mgpolicy.Target // what was asked for; names a group in the messages
}

// named is how a refusal names what was asked for: a group as the target
// says itself ("PIM group 'NAME' (member)"), anything else "role NAME".
func named(role string, t mgpolicy.Target) string {
	if t.Kind == mgpolicy.KindGroup {
		return t.String()
	}
	return "role " + role
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("pim: request %s for %s ended %s", e.RequestID, named(e.Role, e.Target), e.Status)
}

// UserMessage explains the refusal.
func (e *RefusedError) UserMessage() string {
	what := named(e.Role, e.Target)
	switch e.Status {
	case "Denied", "AdminDenied":
		return fmt.Sprintf("an approver denied the activation of %s (PIM request %s)", what, e.RequestID)
	case "Canceled":
		return fmt.Sprintf("the activation of %s was cancelled (PIM request %s)", what, e.RequestID)
	case "TimedOut":
		return fmt.Sprintf("nobody approved %s in time (PIM request %s): call again to ask again", what, e.RequestID)
	}
	return fmt.Sprintf("PIM did not activate %s: request %s ended %s", what, e.RequestID, e.Status)
}

// UserMessage turns any error from this package into a sentence the user can
// act on.
func UserMessage(err error) string {
	var ge *GraphError
	var re *RefusedError
	var nl *NotLiveError
	var ce *ChallengeError
	var se *SignInError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &re):
		return re.UserMessage()
	case errors.As(err, &nl):
		return nl.UserMessage()
	case errors.As(err, &ce):
		return ce.UserMessage()
	case errors.As(err, &se):
		return se.UserMessage()
	case errors.As(err, &ge):
		return ge.UserMessage()
	case errors.Is(err, ErrNotEligible), errors.Is(err, ErrInvalidPrincipal), errors.Is(err, ErrRoleNotFound):
		return strings.TrimPrefix(err.Error(), "pim: ")
	case errors.Is(err, ErrNoAzureCLI):
		return "approvals.credential is azurecli, but the Azure CLI (`az`) is not installed or not on the PATH mcp-gate runs with (a desktop app's PATH can be shorter than your shell's): install it or give mcp-gate a PATH that has it, run `az login`, then call again"
	case errors.Is(err, errAzureCLI):
		return "the Azure CLI gave no Microsoft Graph token: run `az login --tenant <approvals.tenantId>` as the user PIM activates roles for, then call again: " + err.Error()
	case errors.Is(err, ErrAuth):
		return "could not get a Microsoft Graph token (`mcp-gate doctor` shows why; on a desktop, use credential: browser or devicecode with approvals.clientId and run `mcp-gate login`): " + err.Error()
	case errors.Is(err, errARMUnreachable):
		return "Azure Resource Manager is unreachable: check the network and approvals.armURL, then call again"
	case errors.Is(err, ErrUnreachable):
		return "Microsoft Graph is unreachable: check the network and approvals.graphURL, then call again"
	case errors.Is(err, context.DeadlineExceeded):
		return "the activation did not finish in time: call again"
	case errors.Is(err, context.Canceled):
		return "the activation was cancelled"
	}
	return err.Error()
}

// NotLiveError is a request PIM reports Provisioned whose assignment Graph
// does not show live for the principal: deactivated, revoked or ended since,
// or not readable at all (Err). Nothing may run on it.
type NotLiveError struct {
	Role, RequestID string
	Target          mgpolicy.Target // what was asked for: names a group in the messages
	Err             error           // why the read-back failed; nil: read, and no live assignment
}

// what names the target for people: "PIM group 'NAME' (member)", else
// "PIM role 'NAME'".
func (e *NotLiveError) what() string {
	if e.Target.Kind == mgpolicy.KindGroup {
		return e.Target.String()
	}
	return fmt.Sprintf("PIM role '%s'", e.Role)
}

func (e *NotLiveError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("pim: request %s for role %s is Provisioned, but reading back its assignment failed: %v", e.RequestID, e.Role, e.Err)
	}
	return fmt.Sprintf("pim: request %s for role %s is Provisioned, but Graph lists no live assignment of the role for this user", e.RequestID, e.Role)
}

func (e *NotLiveError) Unwrap() error { return e.Err }

// UserMessage says what happened and what to do.
func (e *NotLiveError) UserMessage() string {
	if e.Err != nil {
		return fmt.Sprintf("%s was approved (request %s), but its assignment could not be read back from Microsoft Graph (%s), so nothing was run: call again in a minute",
			e.what(), e.RequestID, UserMessage(e.Err))
	}
	return fmt.Sprintf("%s was approved (request %s), but Entra shows no live assignment of it for you (it was deactivated, revoked or has ended), so nothing was run: check My roles > Active assignments in the Entra PIM portal, then call again",
		e.what(), e.RequestID)
}
