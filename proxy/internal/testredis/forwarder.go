package testredis

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Forwarder relays TCP connections from an address of its own to the test
// Redis, and makes Redis go away there (Cut: open connections are closed,
// new ones are closed as soon as they are accepted) and come back (Restore)
// at the same address, as a restarted Redis or a healed network would.
type Forwarder struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

// NewForwarder starts a forwarder that lives until the test ends.
func NewForwarder(tb testing.TB) *Forwarder {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &Forwarder{ln: ln}
	go f.accept()
	tb.Cleanup(func() {
		ln.Close()
		f.Cut()
	})
	return f
}

// Addr is the forwarder's address, where clients find "Redis".
func (f *Forwarder) Addr() string { return f.ln.Addr().String() }

// Client is a client of the forwarder with short timeouts and no retries,
// so that an outage shows at once; closed when the test ends.
func (f *Forwarder) Client(tb testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: f.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	tb.Cleanup(func() { c.Close() })
	return c
}

// Cut makes Redis go away: every relayed connection is closed and new
// ones are refused until Restore.
func (f *Forwarder) Cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = true
	for _, c := range f.conns {
		c.Close()
	}
	f.conns = nil
}

// Restore brings Redis back at the same address.
func (f *Forwarder) Restore() {
	f.mu.Lock()
	f.cut = false
	f.mu.Unlock()
}

func (f *Forwarder) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		cut := f.cut
		f.mu.Unlock()
		if cut {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", Addr())
		if err != nil {
			c.Close()
			continue
		}
		f.mu.Lock()
		if f.cut {
			f.mu.Unlock()
			c.Close()
			up.Close()
			continue
		}
		f.conns = append(f.conns, c, up)
		f.mu.Unlock()
		go relay(up, c)
		go relay(c, up)
	}
}

func relay(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}
