package main

import (
	"context"
	"errors"
	"io"
)

// runStdio is being built; see the open issues.
func runStdio(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("stdio: not built yet")
}
