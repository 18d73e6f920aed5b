package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tollgate/tollgate/bench/internal/benchproc"
)

// proc is a child process in its own process group, so that stopping it
// stops what it forked (nginx's workers).
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// procs tracks every child so that none outlives the bench.
type procs struct {
	mu      sync.Mutex
	all     []*proc
	logDir  string
	pgidLog string // one process group id a line, for load.sh's last-resort cleanup
}

// start runs argv pinned to cpus (taskset; "" for no pinning) with env added
// to a cleaned environment.
func (ps *procs) start(name, cpus string, env []string, argv ...string) (*proc, error) {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(benchproc.Env(), env...)
	logPath := filepath.Join(ps.logDir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	if ps.pgidLog != "" {
		if lf, err := os.OpenFile(ps.pgidLog, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
			fmt.Fprintln(lf, cmd.Process.Pid)
			lf.Close()
		}
	}
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// tail is the last lines of the child's log, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 6 {
		lines = lines[len(lines)-6:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM to the process group, then SIGKILL after 10s.
func (p *proc) stop() {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	// Whatever the leader left in its group (an orphaned worker).
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
}

// stop stops the given processes, or all of them (newest first) when none
// are given.
func (ps *procs) stop(which ...*proc) {
	ps.mu.Lock()
	if len(which) == 0 {
		which = append(which, ps.all...)
		ps.all = nil
	} else {
		keep := ps.all[:0]
		for _, p := range ps.all {
			found := false
			for _, w := range which {
				found = found || w == p
			}
			if !found {
				keep = append(keep, p)
			}
		}
		ps.all = keep
	}
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for i := len(which) - 1; i >= 0; i-- {
		if which[i] == nil {
			continue
		}
		wg.Go(which[i].stop)
	}
	wg.Wait()
}

// --- CPU time from /proc -----------------------------------------------------

// clockTicks is sysconf(_SC_CLK_TCK), from getconf (100 on Linux).
var clockTicks = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
}()

// statTicks reads utime+stime of one process (all its threads) from
// /proc/<pid>/stat, in clock ticks.
func statTicks(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces and parentheses: fields start after
	// the last ')'. Then: state(3) ppid(4) ... utime(14) stime(15).
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return u + s, true
}

// children maps each pid to its child pids, from /proc/*/stat.
func children() map[int][]int {
	out := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		out[ppid] = append(out[ppid], pid)
	}
	return out
}

// cpuSample is the ticks of each process of a tree at one moment.
type cpuSample map[int]uint64

// sampleTree reads the ticks of root and all its descendants.
func sampleTree(root int, kids map[int][]int) cpuSample {
	s := cpuSample{}
	if root <= 0 {
		return s
	}
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if t, ok := statTicks(pid); ok {
			s[pid] = t
		}
		stack = append(stack, kids[pid]...)
	}
	return s
}

// seconds is the CPU time spent between two samples of the same tree: the
// processes present in both, plus the whole time of processes that appeared.
func (after cpuSample) seconds(before cpuSample) float64 {
	var ticks uint64
	for pid, t := range after {
		if b, ok := before[pid]; ok {
			if t >= b {
				ticks += t - b
			}
		} else {
			ticks += t
		}
	}
	return float64(ticks) / clockTicks
}

// --- small helpers --------------------------------------------------------

// allowedCPUs is the CPU list this process may run on
// (/proc/self/status Cpus_allowed_list, expanded).
func allowedCPUs() []int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return parseCPUList(strings.TrimSpace(v))
		}
	}
	return nil
}

// parseCPUList expands "0-2,5" to [0 1 2 5].
func parseCPUList(s string) []int {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, found := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if found {
			if b, err = strconv.Atoi(hi); err != nil {
				continue
			}
		}
		for c := a; c <= b; c++ {
			out = append(out, c)
		}
	}
	return out
}

func cpuListString(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}
