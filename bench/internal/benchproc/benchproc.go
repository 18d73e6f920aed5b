// Package benchproc is what the bench commands (bench/faults,
// bench/loadbench, bench/scale) share to start the processes they measure:
// an environment the caller's shell cannot skew, and free loopback ports.
package benchproc

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// dropped are the variables of the bench's own environment that a child
// does not inherit: Tollgate's settings, tracing, the Go runtime's knobs
// (a bench sets GOMAXPROCS per child where it pins one) and the state
// directory's default. A child gets what the bench means it to have
// through extra.
var dropped = []string{"TOLLGATE_", "OTEL_", "GOMAXPROCS=", "GODEBUG=", "XDG_STATE_HOME="}

// Env is this process's environment less the dropped variables, plus
// extra (KEY=value each).
func Env(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		keep := true
		for _, p := range dropped {
			if strings.HasPrefix(kv, p) {
				keep = false
				break
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// FreePort asks the kernel for a loopback port nothing listens on right
// now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// FreeAddr is FreePort as 127.0.0.1:<port>.
func FreeAddr() (string, error) {
	p, err := FreePort()
	if err != nil {
		return "", err
	}
	return "127.0.0.1:" + strconv.Itoa(p), nil
}
