package ui

import "github.com/mcp-gate/mcp-gate/internal/policy"

// portal is the Azure portal's Privileged Identity Management extension.
const portal = "https://portal.azure.com/#view/Microsoft_Azure_PIMCommon/"

// Links point to where people act on a waiting activation in the Azure
// portal: approvers at Approve requests, the requester at My roles (whose
// menu also holds My requests, where a request can be cancelled).
type Links struct {
	Approve string `json:"approve"`
	MyRoles string `json:"myRoles"`
}

// portalLinks are the Links for the kind of target: PIM keeps Entra roles,
// PIM groups and Azure resource roles on separate tabs.
func portalLinks(kind string) Links {
	tab := "aadmigratedroles"
	switch kind {
	case policy.KindGroup.String():
		tab = "aadgroup"
	case policy.KindAzureRole.String():
		tab = "azurerbac"
	}
	return Links{Approve: portal + "ApproveRequestMenuBlade/~/" + tab, MyRoles: portal + "ActivationMenuBlade/~/" + tab}
}
