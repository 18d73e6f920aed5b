package configsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStateDir changes systemStateDir: not parallel.
func TestStateDir(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	if got := StateDir(env("TOLLGATE_STATE_DIR", "/srv/tg", "XDG_STATE_HOME", "/home/x/.local/state")); got != "/srv/tg" {
		t.Errorf("with TOLLGATE_STATE_DIR: %q", got)
	}
	if got := StateDir(env("XDG_STATE_HOME", "/home/x/.local/state")); got != "/home/x/.local/state/tollgate" {
		t.Errorf("with XDG_STATE_HOME: %q", got)
	}
	sys := filepath.Join(t.TempDir(), "var-lib-tollgate")
	systemStateDir = sys
	t.Cleanup(func() { systemStateDir = SystemStateDir })
	if got := StateDir(env()); got != sys {
		t.Errorf("writable system directory: %q, want %q", got, sys)
	}
	systemStateDir = "/proc/no-such-dir/tollgate" // cannot be made
	if got := StateDir(env()); got == "" || !filepath.IsAbs(got) || got == systemStateDir {
		t.Errorf("fallback: %q", got)
	}
}

// TestSnapshotPathPerDeployment: one file per Redis deployment and prefix,
// whatever the credentials, which never show in the name.
func TestSnapshotPathPerDeployment(t *testing.T) {
	t.Parallel()
	base := SnapshotPath("/d", "redis://127.0.0.1:6379/0", "")
	if filepath.Dir(base) != "/d" || !strings.HasPrefix(filepath.Base(base), "snapshot-127.0.0.1_6379_0-") {
		t.Fatalf("path %q", base)
	}
	same := []string{
		"redis://:s3cret@127.0.0.1:6379/0",
		"redis://user:s3cret@127.0.0.1:6379/0?dial_timeout=3s",
	}
	for _, u := range same {
		p := SnapshotPath("/d", u, "")
		if p != base {
			t.Errorf("%s: %q, want %q", u, p, base)
		}
		if strings.Contains(p, "s3cret") {
			t.Errorf("%s: password in %q", u, p)
		}
	}
	other := map[string][2]string{
		"another db":     {"redis://127.0.0.1:6379/3", ""},
		"another port":   {"redis://127.0.0.1:6380/0", ""},
		"another prefix": {"redis://127.0.0.1:6379/0", "staging:"},
		"tls":            {"rediss://127.0.0.1:6379/0", ""},
		"sentinel":       {"redis://127.0.0.1:26379/0?master_name=a", ""},
	}
	seen := map[string]string{base: "base"}
	for name, o := range other {
		p := SnapshotPath("/d", o[0], o[1])
		if prev, dup := seen[p]; dup {
			t.Errorf("%s and %s share %q", name, prev, p)
		}
		seen[p] = name
	}
	if a, b := SnapshotPath("/d", "redis://h:1/0?addr=h2:2&addr=h3:3", ""), SnapshotPath("/d", "redis://h:1/0?addr=h3:3&addr=h2:2", ""); a != b {
		t.Errorf("cluster addresses in another order: %q vs %q", a, b)
	}
}

// TestSnapshotFileLocked: a reader waits for a writer holding the lock.
func TestSnapshotFileLocked(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "snapshot.json")
	if err := os.WriteFile(file, []byte(`{"a":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(file, true)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan string, 1)
	go func() {
		b, err := readFileLocked(file)
		if err != nil {
			read <- err.Error()
			return
		}
		read <- string(b)
	}()
	select {
	case got := <-read:
		t.Fatalf("read %q while the file was locked for writing", got)
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	if got := <-read; got != `{"a":1}` {
		t.Fatalf("read %q", got)
	}
}
