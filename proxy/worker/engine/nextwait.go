package engine

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// The client side of writeThenWait (stream.go). After it writes an answer,
// fasthttp's server reads the client's connection for the next request at
// once; the request is never there yet, so that read gets EAGAIN and costs
// a system call per request that nginx does not make (bench/README.md,
// "syscalls/req"). A NextWaitListener's connections instead write the last
// piece of a complete answer inside RawConn.Read, which arms the wait on
// readability before the write, and return from the write once the client
// has sent something (or closed): the server's read then finds the next
// request there.
//
// That is only safe when nothing the client sent before the answer is still
// unread: a request pipelined behind the one answered, or the rest of a
// body, arrived before the wait was armed and would not wake it. So a
// connection waits only when the handler armed it (ArmNextWait) for an
// answer that is complete and buffered, to a request whose body was absent
// or read whole, on a connection that stays open; it stops waiting for good
// when it sees pipelining. A pipelined request that arrives in a segment of
// its own while the handler runs cannot be seen without the very read this
// saves: a sweeper ends any wait that lasts two sweeps (50 to 100 ms), and
// such a connection, or one whose client paused that long, then never waits
// again. The same sweeper ends every wait at once when the server shuts
// down.

// WriteBufferSize is the write buffer size the traffic server must use with
// a NextWaitListener. A write shorter than the buffer is a flush, the last
// of an answer when the handler armed the connection; a longer one, or one
// of exactly its size, is the buffer overflowing in the middle of an answer.
const WriteBufferSize = 4096

// nextWaitSweep is how often a NextWaitListener looks for waits that last.
const nextWaitSweep = 50 * time.Millisecond

// The states of a connection's wait.
const (
	waitIdle uint32 = iota
	waitWaiting
	waitKicking // the sweeper is ending the wait
	waitKicked  // the sweeper has set the read deadline that ends it
)

// longAgo is a read deadline in the past: it ends a wait at once.
var longAgo = time.Unix(1, 0)

// NextWaitListener wraps a TCP listener for the fasthttp traffic server
// (see above). Stop ends its sweeper once the server is done.
type NextWaitListener struct {
	net.Listener
	draining atomic.Bool
	mu       sync.Mutex
	conns    map[*waitConn]struct{}
	stop     chan struct{}
	stopOnce sync.Once
	period   time.Duration
	kicks    atomic.Int64 // waits ended by the sweeper (tests read it)
}

// NewNextWaitListener wraps l and starts its sweeper.
func NewNextWaitListener(l net.Listener) *NextWaitListener {
	return newNextWaitListener(l, nextWaitSweep)
}

func newNextWaitListener(l net.Listener, period time.Duration) *NextWaitListener {
	nl := &NextWaitListener{Listener: l, conns: map[*waitConn]struct{}{}, stop: make(chan struct{}), period: period}
	go nl.sweep()
	return nl
}

// Accept wraps the next TCP connection (others pass as they are).
func (l *NextWaitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	wc := &waitConn{TCPConn: tc, l: l, rc: rc}
	wc.wait.bind(func() error {
		var err error
		wc.n, err = wc.TCPConn.Write(wc.p)
		return err
	})
	l.mu.Lock()
	l.conns[wc] = struct{}{}
	l.mu.Unlock()
	return wc, nil
}

// Close stops accepting and ends every wait: the server is shutting down,
// and a connection waiting for a next request must go idle to be closed.
func (l *NextWaitListener) Close() error {
	err := l.Listener.Close()
	l.draining.Store(true)
	l.mu.Lock()
	for c := range l.conns {
		l.kick(c)
	}
	l.mu.Unlock()
	return err
}

// Stop ends the sweeper; call it once the server has shut down.
func (l *NextWaitListener) Stop() { l.stopOnce.Do(func() { close(l.stop) }) }

// sweep ends waits that lasted a whole period (seen waiting, the same wait,
// at two sweeps in a row), and every wait once the listener is closed.
func (l *NextWaitListener) sweep() {
	t := time.NewTicker(l.period)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		draining := l.draining.Load()
		l.mu.Lock()
		for c := range l.conns {
			seq := c.seq.Load()
			if c.state.Load() == waitWaiting && (draining || seq == c.seen) {
				l.kick(c)
			}
			c.seen = seq
		}
		l.mu.Unlock()
	}
}

// kick ends c's wait, if it is waiting, with a read deadline in the past;
// the waiting writer clears it. Called with l.mu held.
func (l *NextWaitListener) kick(c *waitConn) {
	if c.state.CompareAndSwap(waitWaiting, waitKicking) {
		_ = c.TCPConn.SetReadDeadline(longAgo)
		c.state.Store(waitKicked)
		l.kicks.Add(1)
	}
}

func (l *NextWaitListener) remove(c *waitConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// waitConn is a client connection of a NextWaitListener. Its fields but
// state, seq and seen belong to the goroutine serving the connection.
type waitConn struct {
	*net.TCPConn
	l     *NextWaitListener
	rc    syscall.RawConn
	armed bool // the next flush ends a complete answer
	off   bool // never wait again (pipelining, or a pause)
	state atomic.Uint32
	seq   atomic.Uint32 // waits begun
	seen  uint32        // seq at the sweeper's last look (the sweeper's)

	// Read deadlines, set lazily (SetReadDeadline): the one the server
	// asked for last, and the one set on the connection (zero: none).
	rdWant  time.Time
	rdArmed time.Time

	// The write that ends an armed answer, and what it wrote.
	wait readWait
	p    []byte
	n    int
}

// ArmNextWait tells the connection of ctx, when it is a NextWaitListener's,
// that the answer the handler leaves is complete and the client has sent
// all of its request, so that writing the answer may wait for the next one
// (see above). x is the request's exchange.
func ArmNextWait(ctx *fasthttp.RequestCtx, x *Exchange) {
	c, ok := ctx.Conn().(*waitConn)
	if !ok || c.off {
		return
	}
	if c.armed {
		// Armed by the previous request and no flush or read since: this
		// request came pipelined, read with that one.
		c.armed, c.off = false, true
		return
	}
	req, resp := &ctx.Request, &ctx.Response
	// A request without Content-Length or Transfer-Encoding has no body
	// (fasthttp: -2).
	cl := req.Header.ContentLength()
	c.armed = !ctx.Hijacked() && !x.upgrading &&
		(cl == 0 || cl == -2 || (x.body.replayable && !x.body.clientFailed())) &&
		!resp.IsBodyStream() && !resp.ImmediateHeaderFlush &&
		!req.Header.ConnectionClose() && !resp.Header.ConnectionClose() &&
		req.Header.IsHTTP11()
}

// Read reads the client's next bytes; an arming the answer did not use is
// dropped (nothing is written between a request's read and its answer). A
// read ended by a deadline set on the connection before the one asked for
// (SetReadDeadline) goes on until that one.
func (c *waitConn) Read(p []byte) (int, error) {
	if c.armed {
		c.armed = false
	}
	for {
		n, err := c.TCPConn.Read(p)
		if n == 0 && err != nil && !c.rdWant.Equal(c.rdArmed) && !c.rdWant.IsZero() &&
			errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(c.rdWant) {
			c.rdArmed = c.rdWant
			if err := c.TCPConn.SetReadDeadline(c.rdWant); err != nil {
				return 0, err
			}
			continue
		}
		return n, err
	}
}

// lazyDeadline is how far a read deadline may be moved later without
// setting it on the connection.
const lazyDeadline = time.Second

// SetReadDeadline sets the read deadline, lazily. fasthttp's server moves
// it forward twice per request (the idle timeout before the next request,
// the read timeout once it starts), and each setting costs a runtime timer
// update and clock reads. While the deadline set on the connection comes
// first and less than lazyDeadline before the one asked for, only the one
// asked for is noted: a read the earlier one ends is resumed until the
// later one (Read), so a read never ends before the deadline asked for,
// nor after it.
func (c *waitConn) SetReadDeadline(t time.Time) error {
	c.rdWant = t
	if !t.IsZero() && !c.rdArmed.IsZero() && !t.Before(c.rdArmed) && t.Sub(c.rdArmed) < lazyDeadline {
		return nil
	}
	c.rdArmed = t
	return c.TCPConn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines, the read one as SetReadDeadline does.
func (c *waitConn) SetDeadline(t time.Time) error {
	if err := c.TCPConn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// Write writes p; when p is the flush that ends an armed answer, it returns
// once the client has sent more, closed, or the wait was ended.
func (c *waitConn) Write(p []byte) (int, error) {
	if !c.armed || len(p) >= WriteBufferSize {
		return c.TCPConn.Write(p)
	}
	c.armed = false
	if c.off || c.l.draining.Load() {
		return c.TCPConn.Write(p)
	}
	c.p, c.n = p, 0
	c.seq.Add(1)
	c.state.Store(waitWaiting)
	wrote, writeErr, waitErr := c.wait.run(c.rc)
	c.p = nil
	if !c.state.CompareAndSwap(waitWaiting, waitIdle) {
		// The sweeper ended the wait: let it finish setting the
		// deadline, then take the deadline away (the server sets its own
		// before it reads).
		for c.state.Load() != waitKicked {
			runtime.Gosched()
		}
		_ = c.TCPConn.SetReadDeadline(time.Time{})
		c.rdArmed = time.Time{}
		c.state.Store(waitIdle)
		c.off = true
	} else if waitErr != nil && wrote {
		// The read deadline passed first: a client that pauses.
		c.off = true
	}
	if !wrote {
		// The wait could not start (the read deadline had passed, or the
		// connection is closed): write as usual.
		return c.TCPConn.Write(p)
	}
	return c.n, writeErr
}

// Close closes the connection and forgets it.
func (c *waitConn) Close() error {
	c.l.remove(c)
	return c.TCPConn.Close()
}
