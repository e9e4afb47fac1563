package pimtest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The token endpoint authenticates an app by a client assertion as Entra
// does: a JWT signed by a registered certificate's key for the token
// endpoint, or a federated token of a trusted issuer for the credential's
// subject; anything else is invalid_client.
func TestClientAssertion(t *testing.T) {
	const subject = "system:serviceaccount:ns:gate"
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "gate"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)

	e := startEmu(t, testScenario())
	e.RegisterApp(App{ClientID: gateClientID, IdentifierURI: gateAppURI, Certificates: []*x509.Certificate{cert}, FederatedSubject: subject})
	endpoint := e.Authority() + "/" + e.TenantID() + "/oauth2/v2.0/token"
	thumb := sha256.Sum256(cert.Raw)
	signed := func(k *rsa.PrivateKey, edit func(jwt.MapClaims, map[string]any)) string {
		now := time.Now()
		c := jwt.MapClaims{"aud": endpoint, "iss": gateClientID, "sub": gateClientID, "jti": "1", "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
		tok := jwt.NewWithClaims(jwt.SigningMethodPS256, c)
		tok.Header["x5t#S256"] = base64.StdEncoding.EncodeToString(thumb[:])
		if edit != nil {
			edit(c, tok.Header)
		}
		raw, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	form := func(assertion string) url.Values {
		f := oboForm(e.UserToken(bob, gateAppURI))
		f.Del("client_secret")
		f.Set("client_assertion_type", clientAssertionType)
		f.Set("client_assertion", assertion)
		return f
	}
	tests := []struct {
		name   string
		form   url.Values
		status int
	}{
		{"certificate", form(signed(key, nil)), http.StatusOK},
		{"certificate, x5t sha1 base64url", form(signed(key, func(_ jwt.MapClaims, h map[string]any) {
			delete(h, "x5t#S256")
			h["x5t"] = base64.RawURLEncoding.EncodeToString(sha1Sum(cert.Raw))
		})), http.StatusOK},
		{"federated token", form(e.FederatedToken(subject, time.Hour)), http.StatusOK},
		{"signed by another key", form(signed(other, nil)), http.StatusUnauthorized},
		{"no thumbprint", form(signed(key, func(_ jwt.MapClaims, h map[string]any) { delete(h, "x5t#S256") })), http.StatusUnauthorized},
		{"wrong audience", form(signed(key, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "https://login.example/token" })), http.StatusUnauthorized},
		{"iss is not the client", form(signed(key, func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "someone" })), http.StatusUnauthorized},
		{"sub is not the client", form(signed(key, func(c jwt.MapClaims, _ map[string]any) { c["sub"] = "someone" })), http.StatusUnauthorized},
		{"expired", form(signed(key, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), http.StatusUnauthorized},
		{"no expiry", form(signed(key, func(c jwt.MapClaims, _ map[string]any) { delete(c, "exp") })), http.StatusUnauthorized},
		{"federated token of another subject", form(e.FederatedToken("system:serviceaccount:ns:other", time.Hour)), http.StatusUnauthorized},
		{"federated token expired", form(e.FederatedToken(subject, -time.Minute)), http.StatusUnauthorized},
		{"a user token as the assertion", form(e.UserToken(bob, gateAppURI)), http.StatusUnauthorized},
		{"empty assertion", form(""), http.StatusUnauthorized},
		{"garbage", form("not.a.jwt"), http.StatusUnauthorized},
		{"wrong assertion type", func() url.Values { f := form(signed(key, nil)); f.Set("client_assertion_type", "x"); return f }(), http.StatusBadRequest},
		{"secret and assertion", func() url.Values { f := form(signed(key, nil)); f.Set("client_secret", "s"); return f }(), http.StatusBadRequest},
		{"no secret, no assertion", func() url.Values { f := form(""); f.Del("client_assertion"); f.Del("client_assertion_type"); return f }(), http.StatusUnauthorized},
	}
	for _, tt := range tests {
		status, body := e.obo(t, tt.form)
		if status != tt.status {
			t.Errorf("%s: %d %v, want %d", tt.name, status, body, tt.status)
		}
	}
}

func sha1Sum(b []byte) []byte {
	s := sha1.Sum(b) //nolint:gosec // x5t is SHA-1
	return s[:]
}
