package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// System calls per request: where the CPU of a proxy goes once its own code
// is small. Counted with `perf stat` on the kernel's syscall tracepoints,
// for the proxy's processes only, over the warm-up before each measured run
// (over the measured run when there is no warm-up: the tracepoints then add
// their cost to the CPU measured); skipped (with a note in the report) where
// perf or the tracepoints are not available.
//
// The figure explains the floor of the Go proxies: nginx and HAProxy read
// a socket when epoll said it is readable, while Go's net package reads
// first and parks the goroutine on EAGAIN, so every request costs a Go
// proxy two more read calls (one on the client's connection, waiting for
// its next request; one on the target's, waiting for the answer), as much
// for a bare fasthttp forwarder as for the Tollgate worker.

// syscallGroups sorts the tracepoints counted into the report's columns.
var syscallGroups = map[string][]string{
	"read":  {"read", "readv", "recvfrom", "recvmsg"},
	"write": {"write", "writev", "sendto", "sendmsg"},
	"poll":  {"epoll_wait", "epoll_pwait", "epoll_pwait2"},
	"other": {"futex", "nanosleep", "sched_yield", "epoll_ctl"},
}

// Syscalls are a run's system calls per request, by group.
type Syscalls struct {
	Read  float64 `json:"read"`
	Write float64 `json:"write"`
	Poll  float64 `json:"poll"`
	Other float64 `json:"other"`
}

// Total is every counted call per request.
func (s *Syscalls) Total() float64 { return s.Read + s.Write + s.Poll + s.Other }

// syscallEvents is the perf event list, or "" when perf cannot count them
// here (checked once).
var syscallEvents = func() func() (string, string) {
	var events, why string
	checked := false
	return func() (string, string) {
		if checked {
			return events, why
		}
		checked = true
		if _, err := exec.LookPath("perf"); err != nil {
			why = "perf not installed (apt-get install linux-perf)"
			return events, why
		}
		var evs []string
		for _, g := range []string{"read", "write", "poll", "other"} {
			for _, n := range syscallGroups[g] {
				evs = append(evs, "syscalls:sys_enter_"+n)
			}
		}
		// Keep the tracepoints this kernel has; perf refuses the list if
		// one is missing.
		var have []string
		for _, e := range evs {
			if exec.Command("perf", "stat", "-x,", "-e", e, "--", "true").Run() == nil {
				have = append(have, e)
			}
		}
		if len(have) == 0 {
			why = "perf cannot count syscall tracepoints here (needs root or kernel.perf_event_paranoid <= -1, and tracefs)"
			return events, why
		}
		events = strings.Join(have, ",")
		return events, why
	}
}()

// syscallCounter is a `perf stat` counting the system calls of some
// processes until it is stopped.
type syscallCounter struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// startSyscalls starts counting the system calls of pids, and gives perf a
// moment to attach before the load starts; nil when perf cannot count them
// here. The idle moments before and after the load add only the proxy's
// idle calls, a handful.
func startSyscalls(ctx context.Context, pids []int) *syscallCounter {
	events, _ := syscallEvents()
	if events == "" || len(pids) == 0 {
		return nil
	}
	ps := make([]string, len(pids))
	for i, p := range pids {
		ps[i] = strconv.Itoa(p)
	}
	c := &syscallCounter{cmd: exec.CommandContext(ctx, "perf", "stat", "-x,", "-e", events, "-p", strings.Join(ps, ","))}
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if c.cmd.Start() != nil {
		return nil
	}
	time.Sleep(300 * time.Millisecond)
	return c
}

// stop ends the count and returns the calls counted by tracepoint name
// (nil if perf failed). perf prints its counts when interrupted.
func (c *syscallCounter) stop() map[string]float64 {
	if c == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	_ = c.cmd.Wait()
	counts := map[string]float64{}
	for line := range strings.SplitSeq(c.out.String(), "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || !strings.HasPrefix(f[2], "syscalls:sys_enter_") {
			continue
		}
		n, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue // <not counted>
		}
		counts[strings.TrimPrefix(f[2], "syscalls:sys_enter_")] += n
	}
	if len(counts) == 0 {
		return nil
	}
	return counts
}

// perRequest turns the calls counted over a load into calls per request.
func perRequest(counts map[string]float64, requests int64) *Syscalls {
	if counts == nil || requests <= 0 {
		return nil
	}
	sum := func(g string) float64 {
		var s float64
		for _, n := range syscallGroups[g] {
			s += counts[n]
		}
		return s / float64(requests)
	}
	return &Syscalls{Read: sum("read"), Write: sum("write"), Poll: sum("poll"), Other: sum("other")}
}

// String is the report's cell: total (read + write + poll + other).
func (s *Syscalls) String() string {
	if s == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f (%.1f+%.1f+%.2f+%.2f)", s.Total(), s.Read, s.Write, s.Poll, s.Other)
}

// treePIDs lists root and its descendants.
func treePIDs(root int, kids map[int][]int) []int {
	var out []int
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		out = append(out, pid)
		stack = append(stack, kids[pid]...)
	}
	return out
}
