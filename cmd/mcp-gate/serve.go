package main

import (
	"context"
	"errors"
	"io"
)

// runServe is being built; see the open issues.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("serve: not built yet")
}
