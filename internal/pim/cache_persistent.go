//go:build linux || windows || (darwin && cgo)

package pim

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity/cache"
)

// PersistentCache reports whether this build keeps the interactive
// credentials' tokens across restarts: encrypted with a key on the user's
// session keyring on Linux (lost at reboot), DPAPI on Windows, the
// keychain on macOS (which needs cgo).
const PersistentCache = true

func persistentCache() (azidentity.Cache, error) {
	return cache.New(&cache.Options{Name: "mcp-gate"})
}
