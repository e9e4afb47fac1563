// Package e2e holds end-to-end tests that build the real mcp-gate and
// test-upstream binaries and drive them with mcp-go's client, in front of
// the Go test upstream and the reference server-everything from npm.
package e2e
