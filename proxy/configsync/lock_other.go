//go:build !unix

package configsync

// lockFile is a no-op where flock is not available; the snapshot file is
// still written atomically (temporary file and rename).
func lockFile(string, bool) (func(), error) { return func() {}, nil }
