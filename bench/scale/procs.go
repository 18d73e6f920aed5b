package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/bench/internal/benchproc"
)

// The processes of the bench: a private redis-server, `tollgate control`,
// the `tollgate proxy` workers. Each logs to its own file under the work
// directory and dies with the bench (Pdeathsig).

// proc is one child process.
type proc struct {
	name    string
	argv    []string
	env     []string
	dir     string
	log     string
	cmd     *exec.Cmd
	exited  chan error
	started time.Time
}

func (p *proc) start() error {
	lf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s log: %w", p.name, err)
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = p.env, p.dir, lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.exited = make(chan error, 1)
	go func(ch chan error) { ch <- cmd.Wait(); lf.Close() }(p.exited)
	p.cmd = cmd
	return nil
}

// pid is the process id (0 when not started).
func (p *proc) pid() int {
	if p == nil || p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case err := <-p.exited:
		p.exited <- err
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after 5s, and waits.
func (p *proc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// run starts the process and waits for it to exit.
func (p *proc) run() error {
	if err := p.start(); err != nil {
		return err
	}
	if err := <-p.exited; err != nil {
		return fmt.Errorf("%s: %w (log: %s)", p.name, err, p.log)
	}
	p.cmd = nil
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// --- /proc -------------------------------------------------------------------

// clkTck is USER_HZ, 100 on every Linux the bench runs on.
const clkTck = 100

// cpuSeconds is utime+stime of pid in seconds (-1 if unreadable).
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	// The command name is in parentheses and may hold spaces: fields
	// count from the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return -1
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / clkTck
}

// memMB returns VmRSS and VmHWM (peak) of pid in MiB.
func memMB(pid int) (rss, hwm float64) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return -1, -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []string{"VmRSS:", "VmHWM:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				if k == "VmRSS:" {
					rss = kb / 1024
				} else {
					hwm = kb / 1024
				}
			}
		}
	}
	return rss, hwm
}

// --- Redis ---------------------------------------------------------------------

// startRedis starts the bench's own redis-server on a free port, without
// persistence (the bench measures memory and CPU, not durability).
func startRedis(bin, dir string) (*proc, string, error) {
	addr, err := benchproc.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	data := filepath.Join(dir, "redis")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, "", err
	}
	p := &proc{name: "redis-server", dir: data, env: benchproc.Env(), log: filepath.Join(dir, "logs", "redis.log"),
		argv: []string{bin, "--port", port, "--bind", "127.0.0.1", "--dir", data, "--appendonly", "no",
			"--save", "", "--daemonize", "no"}}
	if err := p.start(); err != nil {
		return nil, "", err
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return p, addr, nil
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("redis-server on %s not answering: %w (log: %s)", addr, err, p.log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// redisInfo reads numeric fields of INFO.
func redisInfo(ctx context.Context, rdb *redis.Client, section string) map[string]float64 {
	out := map[string]float64{}
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return out
	}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = f
		}
	}
	return out
}
