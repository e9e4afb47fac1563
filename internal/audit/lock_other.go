//go:build !unix

package audit

import "os"

// lockFile does nothing here: without flock, one process per audit file is
// assumed, and a Log still notices another writer's lines by the file's size.
func lockFile(*os.File) (unlock func(), err error) { return func() {}, nil }
