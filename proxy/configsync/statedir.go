package configsync

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The last good snapshot is kept on disk by default, so that a worker
// restarted while Redis is down serves (DESIGN: "kept on the worker's disk
// by default"). Each Redis deployment and key prefix has its own file, so
// that two installations on one machine never load each other's snapshot,
// and every read and write holds a lock on it (lock_unix.go).

// SnapshotOff, given as the snapshot file, turns the disk cache off.
const SnapshotOff = "off"

// SystemStateDir is the state directory of a worker run as a system
// service, used when it is writable.
const SystemStateDir = "/var/lib/tollgate"

// systemStateDir is SystemStateDir; tests point it elsewhere so that they
// never create it.
var systemStateDir = SystemStateDir

// StateDir is the directory of the worker's state (the snapshot cache),
// the first of: $TOLLGATE_STATE_DIR; $XDG_STATE_HOME/tollgate;
// /var/lib/tollgate when it is writable (or can be made); the user's cache
// directory (os.UserCacheDir)/tollgate; the temporary directory. getenv
// reads the environment (os.Getenv in production).
func StateDir(getenv func(string) string) string {
	if d := getenv("TOLLGATE_STATE_DIR"); d != "" {
		return d
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "tollgate")
	}
	if writableDir(systemStateDir) {
		return systemStateDir
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "tollgate")
	}
	return filepath.Join(os.TempDir(), "tollgate")
}

// writableDir reports whether dir exists (or can be made) and takes files.
func writableDir(dir string) bool {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return false
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// SnapshotPath is the snapshot file in dir of the Redis deployment at
// redisURL (a URL as TOLLGATE_REDIS_URL takes it, or any other string that
// names the deployment) under key prefix: one file per deployment and
// prefix. Credentials in the URL do not take part, and do not appear in
// the name.
func SnapshotPath(dir, redisURL, prefix string) string {
	id := redisIdentity(redisURL)
	sum := sha256.Sum256([]byte(id + "\x00" + prefix))
	return filepath.Join(dir, "snapshot-"+readable(id)+"-"+hex.EncodeToString(sum[:8])+".json")
}

// DefaultSnapshotPath is SnapshotPath in StateDir(os.Getenv): where a
// worker keeps its last good snapshot unless told otherwise
// (TOLLGATE_PROXY_SNAPSHOT_FILE, whose value "off" turns it off).
func DefaultSnapshotPath(redisURL, prefix string) string {
	return SnapshotPath(StateDir(os.Getenv), redisURL, prefix)
}

// redisIdentity reduces a Redis URL to what names the deployment: scheme,
// addresses (the host and any addr= of a cluster or sentinel URL, sorted),
// database and sentinel master; never user or password.
func redisIdentity(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		if _, after, ok := strings.Cut(raw, "@"); ok {
			return after
		}
		return raw
	}
	addrs := append([]string{u.Host}, u.Query()["addr"]...)
	slices.Sort(addrs)
	id := u.Scheme + "://" + strings.Join(slices.Compact(addrs), ",") + u.Path
	if m := u.Query().Get("master_name"); m != "" {
		id += "?master_name=" + m
	}
	return id
}

// readable keeps a short, file-name-safe trace of the deployment in the
// name, for people looking at the directory.
func readable(id string) string {
	_, id, _ = strings.Cut(id, "://")
	b := make([]byte, 0, 48)
	for i := 0; i < len(id) && len(b) < 48; i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '-':
			b = append(b, c)
		default:
			b = append(b, '_')
		}
	}
	return strings.Trim(string(b), "_")
}
