package pimtest

import (
	"encoding/json"
	"slices"
	"strings"
)

// claimsRequest is what a token request's claims parameter (OpenID Connect
// §5.5, as Entra reads it) asks of the access token: authentication
// contexts (acrs) and MFA (amr). Other claims, such as the client
// capabilities (xms_cc) MSAL merges in, ask nothing of the user.
type claimsRequest struct {
	acrs []string
	mfa  bool
}

// claimRequest is one claim's entry: a single value or several.
type claimRequest struct {
	Value  string   `json:"value"`
	Values []string `json:"values"`
}

func (r claimRequest) all() []string {
	if r.Value != "" {
		return append([]string{r.Value}, r.Values...)
	}
	return r.Values
}

func parseClaimsRequest(raw string) (claimsRequest, error) {
	if raw == "" {
		return claimsRequest{}, nil
	}
	var doc struct {
		AccessToken map[string]claimRequest `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		return claimsRequest{}, err
	}
	return claimsRequest{acrs: doc.AccessToken["acrs"].all(), mfa: slices.Contains(doc.AccessToken["amr"].all(), "mfa")}, nil
}

// unmetBy says in Entra's words what the user's sign-in behind c lacks of
// r; empty when it has all of it.
func (r claimsRequest) unmetBy(c caller) string {
	var missing []string
	if r.mfa && !c.mfa {
		missing = append(missing, "use multi-factor authentication")
	}
	for _, a := range r.acrs {
		if !slices.Contains(c.acrs, a) {
			missing = append(missing, "satisfy the authentication context "+a)
		}
	}
	return strings.Join(missing, " and ")
}

// challenge is the claims the user must sign in for, as Entra names them
// in an interaction_required answer.
func (r claimsRequest) challenge() string {
	at := map[string]any{}
	if r.mfa {
		at["amr"] = map[string]any{"essential": true, "values": []string{"mfa"}}
	}
	switch len(r.acrs) {
	case 0:
	case 1:
		at["acrs"] = map[string]any{"essential": true, "value": r.acrs[0]}
	default:
		at["acrs"] = map[string]any{"essential": true, "values": r.acrs}
	}
	b, _ := json.Marshal(map[string]any{"access_token": at}) // maps of strings
	return string(b)
}
