package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	alice = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"
	dba   = "62e90394-69f5-4237-9190-012177145e10"
)

// TestRunServesDemoScenario runs the command on the demo scenario and goes
// through a request's life over HTTPS the way the curl walkthrough in
// docs/pim-emulator.md does: token, create, read, approve, deactivate,
// create again, cancel; then stops it.
func TestRunServesDemoScenario(t *testing.T) {
	dir := t.TempDir()
	caFile, urlFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "url")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, outW := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--scenario", "testdata/demo-scenario.yaml", "--ca-file", caFile, "--url-file", urlFile}, outW, &stderr)
		outW.Close()
	}()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the URL line: %v (stderr: %s)", err, stderr.String())
	}
	graph, ok := strings.CutPrefix(strings.TrimSpace(line), "PIM emulator listening on ")
	if !ok || !strings.HasPrefix(graph, "https://127.0.0.1:") || !strings.HasSuffix(graph, "/v1.0") {
		t.Fatalf("stdout line %q, want 'PIM emulator listening on https://127.0.0.1:PORT/v1.0'", line)
	}
	if b, err := os.ReadFile(urlFile); err != nil || strings.TrimSpace(string(b)) != graph {
		t.Fatalf("--url-file holds %q (%v), want %q", b, err, graph)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("--ca-file is not a PEM certificate: %q", pem)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	c := &client{t: t, hc: &http.Client{Transport: tr}, graph: graph}
	root := strings.TrimSuffix(graph, "/v1.0")

	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	c.call(http.MethodPost, root+"/_emulator/token", `{"oid":"`+alice+`"}`, http.StatusOK, &tok)
	if tok.TokenType != "Bearer" || strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("token reply %+v, want a Bearer JWT", tok)
	}
	c.token = tok.AccessToken

	reqs := graph + "/roleManagement/directory/roleAssignmentScheduleRequests"
	activate := `{"action":"selfActivate","principalId":"` + alice + `","roleDefinitionId":"` + dba + `","directoryScopeId":"/",` +
		`"justification":"test","scheduleInfo":{"expiration":{"type":"afterDuration","duration":"PT30M"}}}`
	var created, read struct{ ID, Status string }
	c.call(http.MethodPost, reqs, activate, http.StatusCreated, &created)
	if created.Status != "PendingApproval" {
		t.Fatalf("created status %q, want PendingApproval", created.Status)
	}
	c.call(http.MethodGet, reqs+"/"+created.ID, "", http.StatusOK, &read)
	if read.ID != created.ID || read.Status != "PendingApproval" {
		t.Fatalf("read %+v, want %s PendingApproval", read, created.ID)
	}
	c.call(http.MethodPost, root+"/_emulator/requests/"+created.ID+"/approve", "", http.StatusNoContent, nil)
	c.call(http.MethodGet, reqs+"/"+created.ID, "", http.StatusOK, &read)
	if read.Status != "Provisioned" {
		t.Fatalf("after approve: status %q, want Provisioned", read.Status)
	}
	var instances struct {
		Value []struct{ RoleDefinitionID, AssignmentType string }
	}
	c.call(http.MethodGet, graph+"/roleManagement/directory/roleAssignmentScheduleInstances/filterByCurrentUser(on='principal')", "", http.StatusOK, &instances)
	if len(instances.Value) != 1 || instances.Value[0].RoleDefinitionID != dba || instances.Value[0].AssignmentType != "Activated" {
		t.Fatalf("active instances %+v, want the activated DBA role", instances.Value)
	}

	deactivate := `{"action":"selfDeactivate","principalId":"` + alice + `","roleDefinitionId":"` + dba + `","directoryScopeId":"/"}`
	c.call(http.MethodPost, reqs, deactivate, http.StatusCreated, &read)
	if read.Status != "Revoked" {
		t.Fatalf("deactivation status %q, want Revoked", read.Status)
	}
	c.call(http.MethodPost, reqs, activate, http.StatusCreated, &created)
	c.call(http.MethodPost, reqs+"/"+created.ID+"/cancel", "", http.StatusNoContent, nil)
	c.call(http.MethodGet, reqs+"/"+created.ID, "", http.StatusOK, &read)
	if read.Status != "Canceled" {
		t.Fatalf("after cancel: status %q, want Canceled", read.Status)
	}
	c.call(http.MethodPost, reqs+"/"+created.ID+"/cancel", "", http.StatusBadRequest, nil)

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v after its context ended, want nil", err)
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--scenario", "testdata/missing.yaml"},
		{"--scenario", "testdata/demo-scenario.yaml", "--plain-http", "--listen", "0.0.0.0:0"},
		{"--scenario", "testdata/demo-scenario.yaml", "--plain-http", "--ca-file", "x.pem"},
		{"--scenario", "testdata/demo-scenario.yaml", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Fatalf("run(%q) = nil, want an error", args)
			}
		})
	}
}

type client struct {
	t            *testing.T
	hc           *http.Client
	graph, token string
}

func (c *client) call(method, url, body string, want int, out any) {
	c.t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: status %d, want %d; body %s", method, url, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: %v; body %s", method, url, err, raw)
		}
	}
}
