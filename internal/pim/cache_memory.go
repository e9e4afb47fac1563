//go:build !(linux || windows || (darwin && cgo))

package pim

import "github.com/Azure/azure-sdk-for-go/sdk/azidentity"

// PersistentCache is false where azidentity's persistent cache does not
// build (macOS without cgo, among others): tokens live in memory, and the
// authentication record alone cannot sign in silently after a restart.
const PersistentCache = false

func persistentCache() (azidentity.Cache, error) { return azidentity.Cache{}, nil }
