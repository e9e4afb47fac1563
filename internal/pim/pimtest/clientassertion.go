package pimtest

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // x5t is SHA-1 by definition (RFC 7515 §4.1.7)
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// verifyClientAssertion authenticates app by a client assertion, as Entra
// does: either a JWT signed with the key of one of the app's registered
// certificates, named by thumbprint (iss = sub = the client id, aud = the
// token endpoint), or a federated token from a trusted issuer (here the
// emulator's own) with the federated credential's subject and audience.
func (s *Server) verifyClientAssertion(raw string, app App, endpoint string) error {
	if raw == "" {
		return errors.New("the client_assertion is empty")
	}
	var mc jwt.MapClaims
	tok, _, err := jwt.NewParser().ParseUnverified(raw, &mc)
	if err != nil {
		return err
	}
	if iss, _ := mc["iss"].(string); iss == s.Issuer() {
		return s.verifyFederated(raw, app)
	}
	cert, err := registeredCert(tok.Header, app)
	if err != nil {
		return err
	}
	// The client signs with its wall clock, which the emulator's (often
	// fake) clock does not drive: its times are checked against the wall
	// clock, with Entra's five minutes of skew.
	_, err = jwt.ParseWithClaims(raw, &jwt.MapClaims{}, func(*jwt.Token) (any, error) { return cert.PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256", "PS256"}), jwt.WithAudience(endpoint), jwt.WithIssuer(app.ClientID),
		jwt.WithSubject(app.ClientID), jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Minute))
	return err
}

// registeredCert finds the app's certificate the assertion's header names.
func registeredCert(h map[string]any, app App) (*x509.Certificate, error) {
	x5t, _ := h["x5t"].(string)
	x5t256, _ := h["x5t#S256"].(string)
	if x5t == "" && x5t256 == "" {
		return nil, errors.New("the client assertion names no certificate (x5t or x5t#S256)")
	}
	t1, t256 := thumbprint(x5t), thumbprint(x5t256)
	i := slices.IndexFunc(app.Certificates, func(c *x509.Certificate) bool {
		s1, s256 := sha1.Sum(c.Raw), sha256.Sum256(c.Raw) //nolint:gosec // see import
		return (t1 != nil && bytes.Equal(t1, s1[:])) || (t256 != nil && bytes.Equal(t256, s256[:]))
	})
	if i < 0 {
		return nil, fmt.Errorf("the certificate the client assertion names is not registered for application %s", app.ClientID)
	}
	return app.Certificates[i], nil
}

// thumbprint decodes an x5t value: base64url as RFC 7515 says, or the
// padded standard base64 MSAL sends (Entra takes both).
func thumbprint(v string) []byte {
	if v == "" {
		return nil
	}
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			return b
		}
	}
	return nil
}

// verifyFederated checks a token of the emulator's issuer against the
// app's federated identity credential.
func (s *Server) verifyFederated(raw string, app App) error {
	if app.FederatedSubject == "" {
		return fmt.Errorf("application %s has no federated identity credential for issuer %s", app.ClientID, s.Issuer())
	}
	_, err := jwt.ParseWithClaims(raw, &jwt.MapClaims{}, func(*jwt.Token) (any, error) { return &s.signingKey().PublicKey, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(FederatedAudience), jwt.WithIssuer(s.Issuer()),
		jwt.WithSubject(app.FederatedSubject), jwt.WithTimeFunc(s.clock.Now), jwt.WithExpirationRequired())
	return err
}

// FederatedToken is a token of the emulator's issuer for subject, such as
// Kubernetes projects for workload identity, valid for lifetime.
func (s *Server) FederatedToken(subject string, lifetime time.Duration) string {
	now := s.clock.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": s.Issuer(), "sub": subject, "aud": FederatedAudience,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(lifetime).Unix(),
	})
	t.Header["kid"] = issuerKID
	raw, err := t.SignedString(s.signingKey())
	if err != nil {
		panic(fmt.Sprintf("pimtest: sign: %v", err)) // an RSA key always signs
	}
	return raw
}
