package main

import (
	"context"
	"errors"
	"io"
)

// runExplain is being built; see the open issues.
func runExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("explain: not built yet")
}
