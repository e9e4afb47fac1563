package pim

// Azure resource roles are activated through Azure Resource Manager's PIM
// API (Microsoft.Authorization, api-version 2020-10-01), not Graph: see
// https://learn.microsoft.com/rest/api/authorization/privileged-role-assignment-rest-sample.
// The request lifecycle and statuses are Graph's (ARM adds a few), so an
// activation shares polling, cancel and read-back with the Graph path; what
// differs is the wire, the token (ARMScope) and creation: ARM's PUT is
// idempotent by the request's name, so a retried PUT with the same name
// replaces Graph's look-before-create.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/policy"
)

const (
	armPIMVersion     = "2020-10-01" // roleAssignmentScheduleRequests and the schedule instances
	armRoleDefVersion = "2022-04-01" // roleDefinitions
	armAuthorization  = "/providers/Microsoft.Authorization"
	// putAttempts bounds the PUTs of one activation request, all with the
	// same name.
	putAttempts = 3
)

// ARMTokenEnv names the environment variable the "token" credential reads
// an ARM token from when no ARM token file is configured.
const ARMTokenEnv = "MCP_GATE_ARM_TOKEN"

// errARMUnreachable marks an ARM request that got no HTTP answer; it
// always comes with ErrUnreachable.
var errARMUnreachable = errors.New("pim: Azure Resource Manager is unreachable")

// ARM wire shapes, as the 2020-10-01 API documents them: every resource is
// {id, name, type, properties}.
type (
	armRequestProps struct {
		PrincipalID                     string       `json:"principalId"`
		RoleDefinitionID                string       `json:"roleDefinitionId"`
		RequestType                     string       `json:"requestType"`
		LinkedRoleEligibilityScheduleID string       `json:"linkedRoleEligibilityScheduleId,omitempty"`
		ScheduleInfo                    scheduleInfo `json:"scheduleInfo"`
		Justification                   string       `json:"justification,omitempty"`
		TicketInfo                      *ticketInfo  `json:"ticketInfo,omitempty"`
	}
	armRequestBody struct {
		Properties armRequestProps `json:"properties"`
	}
	armRequest struct {
		Name       string `json:"name"`
		Properties struct {
			Status           string `json:"status"`
			PrincipalID      string `json:"principalId"`
			RoleDefinitionID string `json:"roleDefinitionId"`
			RequestType      string `json:"requestType"`
		} `json:"properties"`
	}
	armInstance struct {
		Properties struct {
			Scope                     string     `json:"scope"`
			RoleDefinitionID          string     `json:"roleDefinitionId"`
			PrincipalID               string     `json:"principalId"`
			Status                    string     `json:"status"`
			RoleEligibilityScheduleID string     `json:"roleEligibilityScheduleId"` // eligibility instances
			StartDateTime             *time.Time `json:"startDateTime"`
			EndDateTime               *time.Time `json:"endDateTime"` // null: permanent
		} `json:"properties"`
	}
	armRoleDefinition struct {
		ID         string `json:"id"`
		Name       string `json:"name"` // the role definition's GUID
		Properties struct {
			RoleName string `json:"roleName"`
		} `json:"properties"`
	}
)

// armPath is the URL of tail, a path under Microsoft.Authorization (its
// segments escaped by the caller), at scope. Each scope segment is
// escaped, so a scope can only ever address a path under the ARM base.
func (c *Client) armPath(scope, tail, version string) (string, error) {
	segs := strings.Split(strings.TrimPrefix(scope, "/"), "/")
	if !strings.HasPrefix(scope, "/") || slices.ContainsFunc(segs, func(s string) bool { return s == "" || s == "." || s == ".." }) {
		return "", fmt.Errorf("pim: %q is not an Azure resource scope", scope)
	}
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return c.arm.String() + "/" + strings.Join(segs, "/") + armAuthorization + "/" + tail + "?api-version=" + version, nil
}

// requestPath is the tail of the schedule request named name, plus more.
func requestPath(name, more string) string {
	return "roleAssignmentScheduleRequests/" + url.PathEscape(name) + more
}

// armList lists the signed-in user's instances of collection at scope
// (asTarget(): only the caller's; ARM lists those at the scope, above it
// and below it).
func (c *Client) armList(ctx context.Context, scope, collection string) ([]armInstance, error) {
	u, err := c.armPath(scope, collection, armPIMVersion)
	if err != nil {
		return nil, err
	}
	return pages[armInstance](ctx, c, svcARM, u+"&$filter="+queryEscape("asTarget()"))
}

// roleGUID is the last segment of a role definition id, which ARM writes
// in full (/subscriptions/…/providers/Microsoft.Authorization/roleDefinitions/{guid})
// and policies may write as the GUID alone.
func roleGUID(id string) string {
	return strings.ToLower(id[strings.LastIndex(id, "/")+1:])
}

// subscriptionOf is the /subscriptions/{id} a scope lies in.
func subscriptionOf(scope string) string {
	segs := strings.SplitN(strings.TrimPrefix(scope, "/"), "/", 3)
	if len(segs) < 2 {
		return scope
	}
	return "/" + segs[0] + "/" + segs[1]
}

// fullRoleID is the role definition's ARM id in scope's subscription, the
// form a schedule request names it by.
func fullRoleID(scope, guid string) string {
	return subscriptionOf(scope) + armAuthorization + "/roleDefinitions/" + guid
}

// covers reports whether an instance at scope applies at target: the same
// scope or one above it, compared segment by segment and without regard
// to case, as ARM compares scopes.
func covers(scope, target string) bool {
	s := strings.Split(strings.Trim(scope, "/"), "/")
	t := strings.Split(strings.Trim(target, "/"), "/")
	if len(s) > len(t) || scope == "" {
		return false
	}
	for i := range s {
		if !strings.EqualFold(s[i], t[i]) {
			return false
		}
	}
	return true
}

// matchesARM reports whether an instance is principal's, of the role
// definition guid, at t's scope or above, and live at now.
func (in armInstance) matchesARM(principal, guid string, t policy.Target, now time.Time) bool {
	p := in.Properties
	return strings.EqualFold(p.PrincipalID, principal) && roleGUID(p.RoleDefinitionID) == guid && covers(p.Scope, t.Scope) &&
		(p.StartDateTime == nil || !p.StartDateTime.After(now)) && (p.EndDateTime == nil || p.EndDateTime.After(now))
}

// resolveAzureRole maps an Azure role name to its role definition GUID by
// listing the role definitions visible at t's scope; a GUID or a full
// role definition id is taken as is. Names are unique in a tenant, so the
// resolution is cached by name.
func (c *Client) resolveAzureRole(ctx context.Context, t policy.Target) (string, error) {
	name := strings.TrimSpace(t.Role)
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty Azure role name", ErrRoleNotFound)
	case IsGUID(name):
		return strings.ToLower(name), nil
	case strings.Contains(name, "/roleDefinitions/") && IsGUID(roleGUID(name)):
		return roleGUID(name), nil
	}
	c.mu.Lock()
	id, ok := c.azure[name]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	u, err := c.armPath(t.Scope, "roleDefinitions", armRoleDefVersion)
	if err != nil {
		return "", err
	}
	filter := "roleName eq '" + strings.ReplaceAll(name, "'", "''") + "'"
	defs, err := pages[armRoleDefinition](ctx, c, svcARM, u+"&$filter="+queryEscape(filter))
	if err != nil {
		return "", fmt.Errorf("pim: resolving Azure role %q at %s: %w", name, t.Scope, err)
	}
	// ARM's filter matches names without regard to case; keep exact ones.
	defs = slices.DeleteFunc(defs, func(d armRoleDefinition) bool { return !strings.EqualFold(d.Properties.RoleName, name) })
	switch len(defs) {
	case 0:
		return "", fmt.Errorf("%w: no Azure role is named %q at %s: check the role name and scope in the policy file", ErrRoleNotFound, name, t.Scope)
	case 1:
	default:
		return "", fmt.Errorf("pim: %d Azure roles are named %q at %s: use the role definition id in the policy file", len(defs), name, t.Scope)
	}
	guid := defs[0].Name
	if guid == "" {
		guid = roleGUID(defs[0].ID)
	}
	if !IsGUID(guid) {
		return "", fmt.Errorf("pim: Azure role %q resolved to a malformed id %q", name, guid)
	}
	guid = strings.ToLower(guid)
	c.mu.Lock()
	c.azure[name] = guid
	c.mu.Unlock()
	return guid, nil
}

// armActive reads principal's live assignments of the resolved Azure role
// t (its Role the definition GUID) at t's scope or above and returns the
// one that ends last, as Active does for Graph.
func (c *Client) armActive(ctx context.Context, principal string, t policy.Target) (Grant, bool, error) {
	seen := c.clock.Now()
	insts, err := c.armList(ctx, t.Scope, "roleAssignmentScheduleInstances")
	if err != nil {
		return Grant{}, false, err
	}
	now := c.clock.Now()
	var best Grant
	found := false
	for _, in := range insts {
		if !in.matchesARM(principal, t.Role, t, now) {
			continue
		}
		end := seen.Add(permanentHorizon)
		if in.Properties.EndDateTime != nil {
			end = *in.Properties.EndDateTime
		}
		if found && !end.After(best.End) {
			continue
		}
		best = Grant{RoleDefinitionID: t.Role, End: end, Start: now, Seen: seen, AlreadyActive: true}
		if in.Properties.StartDateTime != nil {
			best.Start = *in.Properties.StartDateTime
		}
		found = true
	}
	return best, found, nil
}

// armEligibility returns the principal's live eligibility for the resolved
// Azure role t that covers t's scope.
func (c *Client) armEligibility(ctx context.Context, principal string, t policy.Target) (armInstance, bool, error) {
	insts, err := c.armList(ctx, t.Scope, "roleEligibilityScheduleInstances")
	if err != nil {
		return armInstance{}, false, err
	}
	now := c.clock.Now()
	for _, in := range insts {
		if in.matchesARM(principal, t.Role, t, now) {
			return in, true, nil
		}
	}
	return armInstance{}, false, nil
}

// activateARM is Activate for an Azure role.
func (c *Client) activateARM(ctx context.Context, req Request, onStatus func(Status), started time.Time) (Grant, error) {
	t := req.Target
	var err error
	if t.Role, err = c.resolveAzureRole(ctx, req.Target); err != nil {
		return Grant{}, err
	}
	elig, ok, err := c.armEligibility(ctx, req.Principal, t)
	if err != nil {
		return Grant{}, fmt.Errorf("pim: checking eligibility for %s: %w", req.Target, err)
	}
	if !ok {
		return Grant{}, fmt.Errorf("%w: you are not eligible for %s (nor at any scope above it): ask an administrator for an eligible PIM assignment", ErrNotEligible, req.Target)
	}
	if g, ok, err := c.armActive(ctx, req.Principal, t); err != nil {
		return Grant{}, fmt.Errorf("pim: checking whether %s is active: %w", req.Target, err)
	} else if ok {
		return g, nil
	}
	named := req
	named.Role = fmt.Sprintf("%s at %s", req.Role, req.Scope) // for every message about this activation
	a := &activation{c: c, req: named, t: t, started: started, onStatus: onStatus, arm: true}
	sr, err := a.put(ctx, elig.Properties.RoleEligibilityScheduleID)
	var ge *GraphError
	if errors.As(err, &ge) && ge.Code == "RoleAssignmentExists" {
		// Activated meanwhile (another replica, the portal): use that grant.
		if g, ok, aerr := c.armActive(ctx, req.Principal, t); aerr == nil && ok {
			return g, nil
		}
	}
	if err != nil {
		return Grant{}, err
	}
	return a.await(ctx, sr)
}

// put creates the SelfActivate request under a new name. A PUT that fails
// in transit or with a transient answer is sent again with the same name,
// which ARM treats as the same request: it can never make two. When a
// retry is refused, the request an unanswered PUT may have made is read
// by its name.
func (a *activation) put(ctx context.Context, eligibilityID string) (scheduleRequest, error) {
	name := newRequestName()
	u, err := a.c.armPath(a.t.Scope, requestPath(name, ""), armPIMVersion)
	if err != nil {
		return scheduleRequest{}, a.wrap(err)
	}
	body := armRequestBody{Properties: armRequestProps{
		PrincipalID:                     a.req.Principal,
		RoleDefinitionID:                fullRoleID(a.t.Scope, a.t.Role),
		RequestType:                     "SelfActivate",
		LinkedRoleEligibilityScheduleID: eligibilityID,
		Justification:                   a.req.Justification,
		ScheduleInfo:                    a.schedule("AfterDuration"),
		TicketInfo:                      a.ticket(),
	}}
	var lastErr error
	for attempt := 1; attempt <= putAttempts; attempt++ {
		var ar armRequest
		_, err := a.c.sendTo(ctx, svcARM, http.MethodPut, u, body, &ar)
		if err == nil {
			if ar.Name == "" {
				ar.Name = name
			}
			a.c.log.Info("pim: Azure role activation requested", "requestId", ar.Name, "status", ar.Properties.Status, "roleDefinitionId", a.t.Role, "scope", a.t.Scope)
			return scheduleRequest{ID: ar.Name, Status: ar.Properties.Status}, nil
		}
		if ctx.Err() != nil {
			// The PUT may have made a request that nobody will wait for;
			// its name is known, so cancel it by name.
			a.cancelAbandoned(ctx, name)
			return scheduleRequest{}, ctx.Err()
		}
		var ge *GraphError
		isGE := errors.As(err, &ge)
		if attempt > 1 && isGE && !ge.transient() {
			// An earlier PUT may have made the request after all.
			if sr, gerr := a.c.armGet(ctx, a.t.Scope, name); gerr == nil {
				return sr, nil
			}
		}
		if !errors.Is(err, ErrUnreachable) && !(isGE && ge.transient()) {
			return scheduleRequest{}, a.wrap(err)
		}
		lastErr = err
		a.c.log.Warn("pim: Azure role activation request failed or went unanswered; sending it again under the same name", "requestId", name, "error", err, "attempt", attempt)
		if isGE && attempt < putAttempts {
			wait, ok := a.retryDelay(ctx, ge)
			if !ok {
				break
			}
			select {
			case <-a.c.clock.After(wait):
			case <-ctx.Done():
				a.cancelAbandoned(ctx, name)
				return scheduleRequest{}, ctx.Err()
			}
		}
	}
	return scheduleRequest{}, a.wrap(lastErr)
}

// cancelAbandoned cancels the request named name, if a PUT made it.
func (a *activation) cancelAbandoned(ctx context.Context, name string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	sr, err := a.c.armGet(cctx, a.t.Scope, name)
	if err != nil || !slices.Contains(pendingStatuses, sr.Status) {
		return
	}
	if err := a.c.armCancel(cctx, a.t.Scope, name); err != nil {
		a.c.log.Warn("pim: cancelling an abandoned request failed", "requestId", name, "error", err)
	}
}

// armGet reads the request named name at scope.
func (c *Client) armGet(ctx context.Context, scope, name string) (scheduleRequest, error) {
	u, err := c.armPath(scope, requestPath(name, ""), armPIMVersion)
	if err != nil {
		return scheduleRequest{}, err
	}
	var ar armRequest
	if _, err := c.sendTo(ctx, svcARM, http.MethodGet, u, nil, &ar); err != nil {
		return scheduleRequest{}, err
	}
	if ar.Name == "" {
		ar.Name = name
	}
	return scheduleRequest{ID: ar.Name, Status: ar.Properties.Status}, nil
}

// armCancel withdraws the pending request named name at scope.
func (c *Client) armCancel(ctx context.Context, scope, name string) error {
	u, err := c.armPath(scope, requestPath(name, "/cancel"), armPIMVersion)
	if err != nil {
		return err
	}
	if _, err := c.sendTo(ctx, svcARM, http.MethodPost, u, nil, nil); err != nil {
		return fmt.Errorf("pim: cancelling request %s: %w", name, err)
	}
	return nil
}

// getRequest and cancelRequest reach the request an activation follows on
// its API.
func (a *activation) getRequest(ctx context.Context, id string) (scheduleRequest, error) {
	if a.arm {
		return a.c.armGet(ctx, a.t.Scope, id)
	}
	return a.c.getRequest(ctx, a.api, id)
}

func (a *activation) cancelRequest(ctx context.Context, id string) error {
	if a.arm {
		return a.c.armCancel(ctx, a.t.Scope, id)
	}
	return a.c.cancel(ctx, a.api, id)
}

// newRequestName is a fresh GUID (version 4) for a schedule request.
func newRequestName() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
