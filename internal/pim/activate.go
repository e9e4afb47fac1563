package pim

import (
	"context"
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
	pathRoleDefinitions = "/roleManagement/directory/roleDefinitions"
	pathRequests        = "/roleManagement/directory/roleAssignmentScheduleRequests"
	pathMyRequests      = pathRequests + "/filterByCurrentUser(on='principal')"
	pathMyEligibilities = "/roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser(on='principal')"
	pathMyAssignments   = "/roleManagement/directory/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')"

	tenantScope = "/"

	// createAttempts bounds create POSTs per activation; every one after the
	// first is preceded by a look-up of the request the last one may have made.
	createAttempts = 3
	// cancelTimeout bounds the Cancel made on behalf of a cancelled caller.
	cancelTimeout = 15 * time.Second
	// clockSkew widens "created by this activation" for a Provisioned
	// request found after a lost reply, since Graph's clock is not ours.
	clockSkew = 5 * time.Minute
	// readBackAttempts bounds the reads of the assignment a Provisioned
	// request made: Entra can list the instance a little after the request
	// reads Provisioned. They are spaced like polls (pollInterval, doubling).
	readBackAttempts = 4
	// permanentHorizon is how long a permanent assignment (no end) is
	// reported to last from when it was read; the grant cache re-reads it
	// every approvals.recheck anyway.
	permanentHorizon = 24 * time.Hour
)

// Request statuses, Graph's and ARM's (which adds FailedAsResourceIsLocked,
// PendingRevocation, AdminApproved and PendingExternalProvisioning).
var (
	refusedStatuses = []string{"Denied", "Failed", "Canceled", "Revoked", "TimedOut", "AdminDenied", "Invalid",
		"FailedAsResourceIsLocked", "PendingRevocation"}
	pendingStatuses = []string{"PendingApproval", "PendingAdminDecision", "PendingApprovalProvisioning", "PendingProvisioning",
		"PendingScheduleCreation", "Granted", "ScheduleCreated", "Accepted", "PendingEvaluation", "ProvisioningStarted",
		"AdminApproved", "PendingExternalProvisioning"}
)

// Wire shapes, as Graph documents them (see the package doc).
type (
	createBody struct {
		Action           string       `json:"action"`
		PrincipalID      string       `json:"principalId"`
		RoleDefinitionID string       `json:"roleDefinitionId,omitempty"` // directory roles
		DirectoryScopeID string       `json:"directoryScopeId,omitempty"` // directory roles
		GroupID          string       `json:"groupId,omitempty"`          // PIM for Groups
		AccessID         string       `json:"accessId,omitempty"`         // PIM for Groups: member or owner
		Justification    string       `json:"justification,omitempty"`
		ScheduleInfo     scheduleInfo `json:"scheduleInfo"`
		TicketInfo       *ticketInfo  `json:"ticketInfo,omitempty"`
	}
	scheduleInfo struct {
		StartDateTime time.Time  `json:"startDateTime"`
		Expiration    expiration `json:"expiration"`
	}
	expiration struct {
		Type     string `json:"type"`
		Duration string `json:"duration"`
	}
	ticketInfo struct {
		TicketNumber string `json:"ticketNumber,omitempty"`
		TicketSystem string `json:"ticketSystem,omitempty"`
	}
	scheduleRequest struct {
		ID               string     `json:"id"`
		Action           string     `json:"action"`
		Status           string     `json:"status"`
		PrincipalID      string     `json:"principalId"`
		RoleDefinitionID string     `json:"roleDefinitionId"`
		DirectoryScopeID string     `json:"directoryScopeId"`
		GroupID          string     `json:"groupId"`
		AccessID         string     `json:"accessId"`
		CreatedDateTime  *time.Time `json:"createdDateTime"`
		ScheduleInfo     *struct {
			StartDateTime *time.Time `json:"startDateTime"`
		} `json:"scheduleInfo"`
	}
	scheduleInstance struct {
		PrincipalID      string     `json:"principalId"`
		RoleDefinitionID string     `json:"roleDefinitionId"`
		DirectoryScopeID string     `json:"directoryScopeId"`
		GroupID          string     `json:"groupId"`
		AccessID         string     `json:"accessId"`
		StartDateTime    *time.Time `json:"startDateTime"`
		EndDateTime      *time.Time `json:"endDateTime"` // null: permanent
	}
	roleDefinition struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName"`
	}
)

// ResolveRole maps a role display name to its roleDefinitionId; a GUID is
// returned as is. Resolutions are cached for the Client's lifetime.
func (c *Client) ResolveRole(ctx context.Context, role string) (string, error) {
	role = strings.TrimSpace(role)
	if role == "" {
		return "", fmt.Errorf("%w: empty role name", ErrRoleNotFound)
	}
	if IsGUID(role) {
		return role, nil
	}
	c.mu.Lock()
	id, ok := c.roles[role]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	filter := "displayName eq '" + strings.ReplaceAll(role, "'", "''") + "'"
	defs, err := list[roleDefinition](ctx, c, pathRoleDefinitions+"?$filter="+queryEscape(filter))
	if err != nil {
		return "", fmt.Errorf("pim: resolving role %q: %w", role, err)
	}
	switch len(defs) {
	case 0:
		return "", fmt.Errorf("%w: no Entra role is named %q: check the role name in the policy file", ErrRoleNotFound, role)
	case 1:
	default:
		return "", fmt.Errorf("pim: %d Entra roles are named %q: use the role definition id in the policy file", len(defs), role)
	}
	if !IsGUID(defs[0].ID) {
		return "", fmt.Errorf("pim: role %q resolved to a malformed id %q", role, defs[0].ID)
	}
	c.mu.Lock()
	c.roles[role] = defs[0].ID
	c.mu.Unlock()
	return defs[0].ID, nil
}

// queryEscape escapes a query value with %20 for spaces, which OData reads
// unambiguously (a '+' may or may not mean a space).
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Activate makes Role active for Principal: it returns the live grant when
// the role is already active, else creates a selfActivate request and polls
// it until PIM decides, calling onStatus (if non-nil) after every poll.
// It stops when ctx ends; a request still pending then is cancelled, so
// approvers are not asked for something nobody waits for.
func (c *Client) Activate(ctx context.Context, req Request, onStatus func(Status)) (Grant, error) {
	started := c.clock.Now()
	if !IsGUID(req.Principal) {
		return Grant{}, fmt.Errorf("%w, not %q", ErrInvalidPrincipal, req.Principal)
	}
	if req.Duration <= 0 {
		return Grant{}, fmt.Errorf("pim: activation of %s: the grant duration must be positive", req.Role)
	}
	if req.Kind == policy.KindAzureRole {
		return c.activateARM(ctx, req, onStatus, started)
	}
	api, err := graphAPIFor(req.Kind)
	if err != nil {
		return Grant{}, err
	}
	t := req.Target
	if t.Role, err = c.Resolve(ctx, req.Target); err != nil {
		return Grant{}, err
	}
	eligible, err := list[scheduleInstance](ctx, c, api.myEligibilities)
	if err != nil {
		return Grant{}, fmt.Errorf("pim: checking eligibility for %s: %w", req.Target, err)
	}
	if !slices.ContainsFunc(eligible, func(in scheduleInstance) bool { return in.matches(req.Principal, t) }) {
		return Grant{}, fmt.Errorf("%w: you are not eligible for %s: ask an administrator for an eligible PIM assignment", ErrNotEligible, req.Target)
	}
	if g, ok, err := c.Active(ctx, req.Principal, t); err != nil {
		return Grant{}, fmt.Errorf("pim: checking whether %s is active: %w", req.Target, err)
	} else if ok {
		return g, nil
	}
	a := &activation{c: c, api: api, req: req, t: t, started: started, onStatus: onStatus}
	// Another replica (or an earlier call) may already be waiting on a request.
	sr, found, err := a.findRequest(ctx, time.Time{})
	if err != nil {
		return Grant{}, fmt.Errorf("pim: looking for a pending request for role %s: %w", req.Role, err)
	}
	a.adopted = found
	if !found {
		sr, err = a.create(ctx)
		var ge *GraphError
		if errors.As(err, &ge) && ge.Code == "RoleAssignmentExists" {
			// Activated meanwhile (another replica, the portal): use that grant.
			if g, ok, aerr := c.Active(ctx, req.Principal, t); aerr == nil && ok {
				return g, nil
			}
		}
		if err != nil {
			return Grant{}, err
		}
	}
	return a.await(ctx, sr)
}

// matches reports whether an instance is principal's, for the resolved
// target t: the role at tenant scope, or the group with t's access. Graph's
// filterByCurrentUser lists only the caller's instances; an entry naming
// anyone else (or no one) is not taken on trust.
func (in scheduleInstance) matches(principal string, t policy.Target) bool {
	return strings.EqualFold(in.PrincipalID, principal) && targets(t, in.RoleDefinitionID, in.DirectoryScopeID, in.GroupID, in.AccessID)
}

// targets reports whether an instance's or request's fields name t.
func targets(t policy.Target, roleID, directoryScope, groupID, accessID string) bool {
	if t.Kind == policy.KindGroup {
		return strings.EqualFold(groupID, t.Role) && strings.EqualFold(accessID, string(t.Access))
	}
	return strings.EqualFold(roleID, t.Role) && (directoryScope == "" || directoryScope == tenantScope)
}

// Active reads principal's assignments of the resolved target t (its Role
// an id) from Graph and returns the live one that ends last. Grant.Seen is when the read was sent: Entra
// showed the assignment live at some time after it. A permanent assignment
// (no end) is reported as ending permanentHorizon after the read.
func (c *Client) Active(ctx context.Context, principal string, t policy.Target) (Grant, bool, error) {
	if t.Kind == policy.KindAzureRole {
		return c.armActive(ctx, principal, t)
	}
	api, err := graphAPIFor(t.Kind)
	if err != nil {
		return Grant{}, false, err
	}
	seen := c.clock.Now()
	insts, err := list[scheduleInstance](ctx, c, api.myAssignments)
	if err != nil {
		return Grant{}, false, err
	}
	now := c.clock.Now()
	var best Grant
	found := false
	for _, in := range insts {
		if !in.matches(principal, t) || (in.StartDateTime != nil && in.StartDateTime.After(now)) {
			continue
		}
		end := seen.Add(permanentHorizon)
		if in.EndDateTime != nil {
			end = *in.EndDateTime
		}
		if !end.After(now) || (found && !end.After(best.End)) {
			continue
		}
		best = Grant{RoleDefinitionID: t.Role, End: end, Start: now, Seen: seen, AlreadyActive: true}
		if in.StartDateTime != nil {
			best.Start = *in.StartDateTime
		}
		found = true
	}
	return best, found, nil
}

// activation is one Activate call past its checks.
type activation struct {
	c        *Client
	api      graphAPI // the Graph API, unless arm
	arm      bool     // an Azure role: the request is ARM's, named at t.Scope
	req      Request
	t        policy.Target // req.Target resolved: its Role is the id
	started  time.Time
	onStatus func(Status)
	// adopted: the request awaited is someone else's (another replica's,
	// the portal's), found pending rather than made by this activation.
	// It is theirs to withdraw: a caller of this activation going away
	// does not cancel it, since others may be waiting on it.
	adopted bool
}

// findRequest returns the newest of the principal's requests for the role
// that is still pending, or Provisioned and created after since (when since
// is set): a request this activation made although it never saw the reply.
func (a *activation) findRequest(ctx context.Context, since time.Time) (scheduleRequest, bool, error) {
	reqs, err := list[scheduleRequest](ctx, a.c, a.api.myRequests)
	if err != nil {
		return scheduleRequest{}, false, err
	}
	var best scheduleRequest
	found := false
	for _, r := range reqs {
		if r.ID == "" || !strings.EqualFold(r.PrincipalID, a.req.Principal) || !targets(a.t, r.RoleDefinitionID, r.DirectoryScopeID, r.GroupID, r.AccessID) ||
			(r.Action != "" && r.Action != "selfActivate") {
			continue
		}
		ok := slices.Contains(pendingStatuses, r.Status)
		if !ok && r.Status == "Provisioned" && !since.IsZero() {
			ok = r.CreatedDateTime != nil && r.CreatedDateTime.After(since.Add(-clockSkew))
		}
		if ok && (!found || created(r).After(created(best))) {
			best, found = r, true
		}
	}
	if found {
		a.c.log.Info("pim: found an existing request", "requestId", best.ID, "status", best.Status, "roleDefinitionId", a.t.Role)
	}
	return best, found, nil
}

func created(r scheduleRequest) time.Time {
	if r.CreatedDateTime == nil {
		return time.Time{}
	}
	return *r.CreatedDateTime
}

// create POSTs the selfActivate request. The POST is never replayed blindly:
// after a failed or unanswered one, the request it may have made is looked
// up first, and only when there is none is another POST sent.
func (a *activation) create(ctx context.Context) (scheduleRequest, error) {
	body := createBody{
		Action:        "selfActivate",
		PrincipalID:   a.req.Principal,
		Justification: a.req.Justification,
		ScheduleInfo:  a.schedule("afterDuration"),
		TicketInfo:    a.ticket(),
	}
	if a.t.Kind == policy.KindGroup {
		body.GroupID, body.AccessID = a.t.Role, string(a.t.Access)
	} else {
		body.RoleDefinitionID, body.DirectoryScopeID = a.t.Role, tenantScope
	}
	// A claims challenge this role made before is met up front.
	var token string
	steppedUp := false
	a.c.mu.Lock()
	known := a.c.needs[a.t.Role]
	a.c.mu.Unlock()
	if known != nil && a.c.asksClaims() {
		tok, err := a.c.challengeToken(ctx, known)
		if err != nil {
			return scheduleRequest{}, a.wrap(err)
		}
		token, steppedUp = tok, true
	}
	firstPost := a.c.clock.Now()
	for attempt := 1; ; attempt++ {
		var sr scheduleRequest
		pctx := ctx
		if token != "" {
			pctx = withBearer(ctx, token)
		}
		_, err := a.c.send(pctx, http.MethodPost, a.c.url(a.api.requests), body, &sr)
		if err == nil && sr.ID == "" {
			return scheduleRequest{}, a.wrap(errors.New("the answer has no request id"))
		}
		if err == nil {
			a.c.log.Info("pim: activation requested", "requestId", sr.ID, "status", sr.Status, "roleDefinitionId", a.t.Role)
			return sr, nil
		}
		if ctx.Err() != nil {
			// The POST may have made a request that nobody will wait for.
			a.cancelOrphan(ctx, firstPost)
			return scheduleRequest{}, ctx.Err()
		}
		var ge *GraphError
		isGE := errors.As(err, &ge)
		switch {
		case isGE && ge.Code == "RoleAssignmentExists":
			return scheduleRequest{}, a.wrap(err) // Activate reads the assignment back
		case isGE && ge.Claims != "" && steppedUp:
			return scheduleRequest{}, a.wrap(&ChallengeError{Graph: ge, Kind: a.c.kind, Retried: true})
		case isGE && ge.Claims != "":
			// MFA or an authentication context: a 400 that made no
			// request. Sign in again for it and post once more.
			a.c.mu.Lock()
			a.c.needs[a.t.Role] = ge
			a.c.mu.Unlock()
			tok, terr := a.c.challengeToken(ctx, ge)
			if terr != nil {
				return scheduleRequest{}, a.wrap(terr)
			}
			token, steppedUp = tok, true
			a.c.log.Info("pim: signed in again for a claims challenge; requesting once more", "roleDefinitionId", a.t.Role, "code", ge.Code)
			continue
		case isGE && ge.Code == "PendingRoleAssignmentRequest":
			// Someone else's POST won; wait on theirs.
		case errors.Is(err, ErrUnreachable), isGE && ge.transient():
			if attempt == createAttempts {
				return scheduleRequest{}, a.wrap(err)
			}
			if isGE {
				wait, ok := a.retryDelay(ctx, ge)
				if !ok {
					return scheduleRequest{}, a.wrap(err)
				}
				select {
				case <-a.c.clock.After(wait):
				case <-ctx.Done():
					a.cancelOrphan(ctx, firstPost)
					return scheduleRequest{}, ctx.Err()
				}
			}
		default:
			return scheduleRequest{}, a.wrap(err)
		}
		a.c.log.Warn("pim: activation request failed or went unanswered; looking for the request it may have made",
			"error", err, "attempt", attempt)
		sr, found, ferr := a.findRequest(ctx, firstPost)
		if ferr != nil {
			return scheduleRequest{}, a.wrap(fmt.Errorf("%w (then looking for the request it may have made: %w)", err, ferr))
		}
		if isGE && ge.Code == "PendingRoleAssignmentRequest" {
			if !found {
				return scheduleRequest{}, a.wrap(err)
			}
			a.adopted = true
		}
		if found {
			return sr, nil
		}
	}
}

// schedule and ticket are the parts of a create body Graph and ARM share;
// the two spell the expiration type differently (afterDuration).
func (a *activation) schedule(afterDuration string) scheduleInfo {
	return scheduleInfo{
		StartDateTime: a.c.clock.Now().UTC().Truncate(time.Second),
		Expiration:    expiration{Type: afterDuration, Duration: isoDuration(a.req.Duration)},
	}
}

// ticket is nil when the request names no ticket, so that none is sent.
func (a *activation) ticket() *ticketInfo {
	if a.req.TicketNumber == "" && a.req.TicketSystem == "" {
		return nil
	}
	return &ticketInfo{TicketNumber: a.req.TicketNumber, TicketSystem: a.req.TicketSystem}
}

// retryDelay is how long to wait before sending a create again after the
// transient answer ge: what its Retry-After asks, else a backed-off poll
// interval. It is not ok when ctx's deadline comes first, since a wait
// that cannot end in a retry only delays the refusal.
func (a *activation) retryDelay(ctx context.Context, ge *GraphError) (time.Duration, bool) {
	wait := ge.RetryAfter
	if wait == 0 {
		wait = a.c.backoff(a.c.poll)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return 0, false
	}
	return wait, true
}

func (a *activation) wrap(err error) error {
	return fmt.Errorf("pim: requesting role %s: %w", a.req.Role, err)
}

// cancelOrphan cancels the request a create POST interrupted by ctx may
// have made.
func (a *activation) cancelOrphan(ctx context.Context, since time.Time) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	sr, found, err := a.findRequest(cctx, since)
	if err != nil || !found || !slices.Contains(pendingStatuses, sr.Status) {
		return
	}
	if err := a.cancelRequest(cctx, sr.ID); err != nil {
		a.c.log.Warn("pim: cancelling an abandoned request failed", "requestId", sr.ID, "error", err)
	}
}

// await polls the request until PIM decides or ctx ends.
func (a *activation) await(ctx context.Context, sr scheduleRequest) (Grant, error) {
	delay := a.c.poll
	var lastErr error
	for {
		if sr.ID != "" && a.onStatus != nil {
			a.onStatus(Status{RequestID: sr.ID, Status: sr.Status, Elapsed: a.c.clock.Now().Sub(a.started)})
		}
		switch {
		case sr.Status == "Provisioned":
			return a.readBack(ctx, sr.ID)
		case slices.Contains(refusedStatuses, sr.Status):
			return Grant{}, &RefusedError{Status: sr.Status, RequestID: sr.ID, Role: a.req.Role, Target: a.req.Target}
		}
		select {
		case <-a.c.clock.After(a.c.backoff(delay)):
		case <-ctx.Done():
			return Grant{}, a.abandon(ctx, sr.ID, lastErr)
		}
		delay = min(2*delay, a.c.max)
		next, err := a.getRequest(ctx, sr.ID)
		var ge *GraphError
		switch {
		case err == nil:
			sr, lastErr = next, nil
		case ctx.Err() != nil:
			return Grant{}, a.abandon(ctx, sr.ID, lastErr)
		case errors.Is(err, ErrUnreachable), errors.As(err, &ge) && ge.transient():
			// The request stands; a blip in Graph is not an answer.
			a.c.log.Warn("pim: polling failed; will poll again", "requestId", sr.ID, "error", err)
			lastErr = err
			if ge != nil && ge.RetryAfter > delay {
				delay = ge.RetryAfter
			}
		default:
			return Grant{}, fmt.Errorf("pim: polling request %s for role %s: %w", sr.ID, a.req.Role, err)
		}
	}
}

// abandon cancels a request whose caller went away and returns ctx's
// error, with the last polling failure when there was one (so a deadline
// reached while Graph throttled reads as throttling).
func (a *activation) abandon(ctx context.Context, requestID string, lastErr error) error {
	err := fmt.Errorf("pim: activation of role %s (request %s) abandoned: %w", a.req.Role, requestID, ctx.Err())
	if lastErr != nil {
		err = fmt.Errorf("%w (last poll: %w)", err, lastErr)
	}
	if a.adopted {
		a.c.log.Info("pim: left a request this gate did not make pending for those waiting on it", "requestId", requestID)
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelTimeout)
	defer cancel()
	if cerr := a.cancelRequest(cctx, requestID); cerr != nil {
		a.c.log.Warn("pim: cancelling an abandoned request failed", "requestId", requestID, "error", cerr)
		return fmt.Errorf("%w; cancelling it failed: %w", err, cerr)
	}
	a.c.log.Info("pim: cancelled an abandoned request", "requestId", requestID)
	return err
}

// readBack returns the live assignment a Provisioned request made, read
// back from Graph, so that a grant is only ever one Entra shows live for
// this principal and ends when Entra ends it. The instance may lag the
// request, so a missing one is read again a few times; Graph's own
// throttling and 5xx answers are retried (with Retry-After) by the pipeline.
func (a *activation) readBack(ctx context.Context, requestID string) (Grant, error) {
	delay := a.c.poll
	for attempt := 1; ; attempt++ {
		g, ok, err := a.c.Active(ctx, a.req.Principal, a.t)
		switch {
		case err != nil && ctx.Err() != nil:
			return Grant{}, fmt.Errorf("pim: reading back role %s (request %s): %w", a.req.Role, requestID, ctx.Err())
		case err != nil:
			return Grant{}, &NotLiveError{Role: a.req.Role, Target: a.req.Target, RequestID: requestID, Err: err}
		case ok:
			g.RequestID, g.AlreadyActive = requestID, false
			return g, nil
		case attempt == readBackAttempts:
			return Grant{}, &NotLiveError{Role: a.req.Role, Target: a.req.Target, RequestID: requestID}
		}
		a.c.log.Info("pim: request is Provisioned but its assignment is not listed yet; reading again", "requestId", requestID, "attempt", attempt)
		select {
		case <-a.c.clock.After(a.c.backoff(delay)):
		case <-ctx.Done():
			return Grant{}, fmt.Errorf("pim: reading back role %s (request %s): %w", a.req.Role, requestID, ctx.Err())
		}
		delay = min(2*delay, a.c.max)
	}
}

func (c *Client) getRequest(ctx context.Context, api graphAPI, id string) (scheduleRequest, error) {
	var sr scheduleRequest
	_, err := c.send(ctx, http.MethodGet, c.url(api.requests+"/"+url.PathEscape(id)), nil, &sr)
	return sr, err
}

// Cancel withdraws a pending directory role request (Graph answers 400
// once it is decided).
func (c *Client) Cancel(ctx context.Context, requestID string) error {
	return c.cancel(ctx, directoryAPI, requestID)
}

func (c *Client) cancel(ctx context.Context, api graphAPI, requestID string) error {
	if requestID == "" {
		return errors.New("pim: cancel: empty request id")
	}
	if _, err := c.send(ctx, http.MethodPost, c.url(api.requests+"/"+url.PathEscape(requestID)+"/cancel"), nil, nil); err != nil {
		return fmt.Errorf("pim: cancelling request %s: %w", requestID, err)
	}
	return nil
}

// isoDuration formats d as an ISO-8601 duration (PT15M, PT1H30M, PT45S),
// rounding up to whole seconds.
func isoDuration(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	h, m := s/3600, s%3600/60
	s %= 60
	var b strings.Builder
	b.WriteString("PT")
	if h > 0 {
		fmt.Fprintf(&b, "%dH", h)
	}
	if m > 0 {
		fmt.Fprintf(&b, "%dM", m)
	}
	if s > 0 || (h == 0 && m == 0) {
		fmt.Fprintf(&b, "%dS", s)
	}
	return b.String()
}
