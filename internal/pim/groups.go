package pim

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/policy"
)

// graphAPI is the part of Graph PIM an activation talks to: directory
// roles (roleManagement/directory) or PIM for Groups
// (identityGovernance/privilegedAccess/group). Both share the request
// lifecycle, the statuses, the errors and the look-before-create rule.
type graphAPI struct {
	requests, myRequests, myEligibilities, myAssignments string
}

const pathGroupPIM = "/identityGovernance/privilegedAccess/group"

var (
	directoryAPI = graphAPI{requests: pathRequests, myRequests: pathMyRequests, myEligibilities: pathMyEligibilities, myAssignments: pathMyAssignments}
	groupsAPI    = graphAPI{
		requests:        pathGroupPIM + "/assignmentScheduleRequests",
		myRequests:      pathGroupPIM + "/assignmentScheduleRequests/filterByCurrentUser(on='principal')",
		myEligibilities: pathGroupPIM + "/eligibilityScheduleInstances/filterByCurrentUser(on='principal')",
		myAssignments:   pathGroupPIM + "/assignmentScheduleInstances/filterByCurrentUser(on='principal')",
	}
)

// graphAPIFor returns the Graph API that activates kind.
func graphAPIFor(kind policy.Kind) (graphAPI, error) {
	switch kind {
	case policy.KindRole:
		return directoryAPI, nil
	case policy.KindGroup:
		return groupsAPI, nil
	}
	return graphAPI{}, fmt.Errorf("pim: this mcp-gate cannot activate a %s yet", kind)
}

// Resolve maps t's name to the id PIM knows it by: a directory role's
// definition id, a group's object id or an Azure role definition's GUID;
// a GUID is returned as is.
//
// Concurrent resolutions of one target share one Graph lookup: a burst of
// calls needing a role not yet resolved (a replica's first minutes) is one
// read, not one per call (which Graph would throttle). The shared lookup
// runs on its own deadline, so one caller giving up does not fail the
// others (it keeps the first caller's deadline, if any); each caller
// still stops waiting when its own ctx ends.
func (c *Client) Resolve(ctx context.Context, t policy.Target) (string, error) {
	var resolve func(context.Context) (string, error)
	switch t.Kind {
	case policy.KindRole:
		resolve = func(ctx context.Context) (string, error) { return c.ResolveRole(ctx, t.Role) }
	case policy.KindGroup:
		resolve = func(ctx context.Context) (string, error) { return c.resolveGroup(ctx, t.Role) }
	case policy.KindAzureRole:
		resolve = func(ctx context.Context) (string, error) { return c.resolveAzureRole(ctx, t) }
	default:
		return "", fmt.Errorf("pim: this mcp-gate cannot activate a %s yet", t.Kind)
	}
	ch := c.resolving.DoChan(t.Kind.String()+"\x00"+t.Scope+"\x00"+t.Role, func() (any, error) {
		dl, ok := ctx.Deadline()
		if !ok {
			dl = time.Now().Add(resolveTimeout) // a context's deadline is on the real clock
		}
		lctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), dl)
		defer cancel()
		return resolve(lctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// resolveTimeout bounds a shared name lookup (Resolve) whose first caller
// set no deadline.
const resolveTimeout = 2 * time.Minute

type group struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// resolveGroup maps a group display name to its object id with
// GET /groups?$filter=displayName eq '…'. Resolutions are cached for the
// Client's lifetime, apart from directory roles'.
func (c *Client) resolveGroup(ctx context.Context, name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return "", fmt.Errorf("%w: empty group name", ErrRoleNotFound)
	}
	if IsGUID(name) {
		return name, nil
	}
	c.mu.Lock()
	id, ok := c.groups[name]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	filter := "displayName eq '" + strings.ReplaceAll(name, "'", "''") + "'"
	gs, err := list[group](ctx, c, "/groups?$select=id,displayName&$filter="+queryEscape(filter))
	if err != nil {
		return "", fmt.Errorf("pim: resolving group %q: %w", name, err)
	}
	switch len(gs) {
	case 0:
		return "", fmt.Errorf("%w: no Entra group is named %q: check the group name in the policy file", ErrRoleNotFound, name)
	case 1:
	default:
		return "", fmt.Errorf("pim: %d Entra groups are named %q: use the group's object id in the policy file", len(gs), name)
	}
	if !IsGUID(gs[0].ID) {
		return "", fmt.Errorf("pim: group %q resolved to a malformed id %q", name, gs[0].ID)
	}
	c.mu.Lock()
	c.groups[name] = gs[0].ID
	c.mu.Unlock()
	return gs[0].ID, nil
}

// EligibleFor reports whether principal is eligible for the resolved
// target t (its Role an id): a directory role or a group's access.
func (c *Client) EligibleFor(ctx context.Context, principal string, t policy.Target) (bool, error) {
	if t.Kind == policy.KindAzureRole {
		_, ok, err := c.armEligibility(ctx, principal, t)
		return ok, err
	}
	api, err := graphAPIFor(t.Kind)
	if err != nil {
		return false, err
	}
	eligible, err := list[scheduleInstance](ctx, c, api.myEligibilities)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(eligible, func(in scheduleInstance) bool { return in.matches(principal, t) }), nil
}
