package pimtest

import "time"

// The JSON shapes below follow the Microsoft Graph v1.0 resources
// unifiedRoleAssignmentScheduleRequest, unifiedRoleAssignmentScheduleInstance,
// unifiedRoleEligibilityScheduleInstance and unifiedRoleDefinition. They are
// written independently of internal/pim so a mistake there is not mirrored
// here. Properties Graph sends as null are kept (not omitted) for fidelity.

// requestBody is what a client POSTs to roleAssignmentScheduleRequests.
type requestBody struct {
	Action           string        `json:"action"`
	PrincipalID      string        `json:"principalId"`
	RoleDefinitionID string        `json:"roleDefinitionId"`
	DirectoryScopeID string        `json:"directoryScopeId"`
	AppScopeID       *string       `json:"appScopeId"`
	Justification    string        `json:"justification"`
	ScheduleInfo     *scheduleInfo `json:"scheduleInfo"`
	TicketInfo       *ticketInfo   `json:"ticketInfo"`
}

type scheduleInfo struct {
	StartDateTime *time.Time  `json:"startDateTime"`
	Recurrence    any         `json:"recurrence"`
	Expiration    *expiration `json:"expiration"`
}

type expiration struct {
	Type        string     `json:"type"`
	EndDateTime *time.Time `json:"endDateTime"`
	Duration    *string    `json:"duration"`
}

type ticketInfo struct {
	TicketNumber *string `json:"ticketNumber"`
	TicketSystem *string `json:"ticketSystem"`
}

type identitySet struct {
	Application any       `json:"application"`
	Device      any       `json:"device"`
	User        *identity `json:"user"`
}

type identity struct {
	DisplayName *string `json:"displayName"`
	ID          string  `json:"id"`
}

// requestJSON is a unifiedRoleAssignmentScheduleRequest.
type requestJSON struct {
	Context           string       `json:"@odata.context,omitempty"`
	ID                string       `json:"id"`
	Status            string       `json:"status"`
	CreatedDateTime   time.Time    `json:"createdDateTime"`
	CompletedDateTime *time.Time   `json:"completedDateTime"`
	ApprovalID        *string      `json:"approvalId"`
	CustomData        *string      `json:"customData"`
	Action            string       `json:"action"`
	PrincipalID       string       `json:"principalId"`
	RoleDefinitionID  string       `json:"roleDefinitionId"`
	DirectoryScopeID  string       `json:"directoryScopeId"`
	AppScopeID        *string      `json:"appScopeId"`
	IsValidationOnly  bool         `json:"isValidationOnly"`
	TargetScheduleID  string       `json:"targetScheduleId"`
	Justification     *string      `json:"justification"`
	CreatedBy         identitySet  `json:"createdBy"`
	ScheduleInfo      scheduleInfo `json:"scheduleInfo"`
	TicketInfo        ticketInfo   `json:"ticketInfo"`
}

// assignmentInstanceJSON is a unifiedRoleAssignmentScheduleInstance.
type assignmentInstanceJSON struct {
	ID                       string     `json:"id"`
	PrincipalID              string     `json:"principalId"`
	RoleDefinitionID         string     `json:"roleDefinitionId"`
	DirectoryScopeID         string     `json:"directoryScopeId"`
	AppScopeID               *string    `json:"appScopeId"`
	StartDateTime            time.Time  `json:"startDateTime"`
	EndDateTime              *time.Time `json:"endDateTime"`
	AssignmentType           string     `json:"assignmentType"`
	MemberType               string     `json:"memberType"`
	RoleAssignmentOriginID   string     `json:"roleAssignmentOriginId"`
	RoleAssignmentScheduleID string     `json:"roleAssignmentScheduleId"`
}

// eligibilityInstanceJSON is a unifiedRoleEligibilityScheduleInstance.
type eligibilityInstanceJSON struct {
	ID                        string     `json:"id"`
	PrincipalID               string     `json:"principalId"`
	RoleDefinitionID          string     `json:"roleDefinitionId"`
	DirectoryScopeID          string     `json:"directoryScopeId"`
	AppScopeID                *string    `json:"appScopeId"`
	StartDateTime             time.Time  `json:"startDateTime"`
	EndDateTime               *time.Time `json:"endDateTime"`
	MemberType                string     `json:"memberType"`
	RoleEligibilityScheduleID string     `json:"roleEligibilityScheduleId"`
}

// roleDefinitionJSON is a unifiedRoleDefinition.
type roleDefinitionJSON struct {
	Context         string           `json:"@odata.context,omitempty"`
	ID              string           `json:"id"`
	Description     string           `json:"description"`
	DisplayName     string           `json:"displayName"`
	IsBuiltIn       bool             `json:"isBuiltIn"`
	IsEnabled       bool             `json:"isEnabled"`
	ResourceScopes  []string         `json:"resourceScopes"`
	TemplateID      string           `json:"templateId"`
	Version         *string          `json:"version"`
	RolePermissions []rolePermission `json:"rolePermissions"`
}

type rolePermission struct {
	AllowedResourceActions []string `json:"allowedResourceActions"`
	Condition              *string  `json:"condition"`
}

// listJSON is an OData collection page.
type listJSON[T any] struct {
	Context  string `json:"@odata.context"`
	NextLink string `json:"@odata.nextLink,omitempty"`
	Value    []T    `json:"value"`
}

// errorJSON is an OData error body.
type errorJSON struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError innerError `json:"innerError"`
}

type innerError struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

// tokenRequest and tokenResponse are the /_emulator/token exchange.
type tokenRequest struct {
	OID  string `json:"oid"`
	Name string `json:"name"`
	MFA  bool   `json:"mfa"`
	// Resource is graph (the default) or arm: the audience of the token.
	Resource string `json:"resource"`
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}
