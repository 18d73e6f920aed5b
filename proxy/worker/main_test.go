package worker

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the package's workers a state directory of their own: a
// worker keeps its last good snapshot on disk by default (Options.
// SnapshotFile), and tests must not write into the machine's.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tollgate-worker-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("TOLLGATE_STATE_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
