package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// lineWriter hands each write to the test, so it can wait for the announcement.
type lineWriter struct{ lines chan string }

func (w lineWriter) Write(p []byte) (int, error) {
	w.lines <- string(p)
	return len(p), nil
}

func TestRunHTTPWritesAddrFile(t *testing.T) {
	addrFile := filepath.Join(t.TempDir(), "addr")
	stderr := lineWriter{lines: make(chan string, 4)}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	args := []string{"--transport", "http", "--listen", "127.0.0.1:0", "--addr-file", addrFile, "--name", "gamma"}
	go func() { done <- run(ctx, args, strings.NewReader(""), io.Discard, stderr, func(int) {}) }()

	line := <-stderr.lines
	raw, err := os.ReadFile(addrFile)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + strings.TrimSpace(string(raw)) + "/mcp"
	if line != "listening on "+url+"\n" {
		t.Fatalf("stderr %q does not announce %s", line, url)
	}

	cli, err := client.NewStreamableHttpClient(url)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.Start(ctx); err != nil {
		t.Fatal(err)
	}
	init, err := cli.Initialize(ctx, mcp.InitializeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if init.ServerInfo.Name != "gamma" {
		t.Errorf("server name %q, want gamma", init.ServerInfo.Name)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRunRejectsUnknownTransport(t *testing.T) {
	err := run(t.Context(), []string{"--transport", "carrier-pigeon"}, strings.NewReader(""), io.Discard, io.Discard, func(int) {})
	if err == nil || !strings.Contains(err.Error(), "stdio or http") {
		t.Errorf("run = %v, want transport error", err)
	}
}
