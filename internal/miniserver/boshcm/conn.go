package boshcm

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// chanMutex is a mutex with a broadcast channel: waiters take the channel
// under the lock and sleep on it after unlocking, so a wait can also end on
// a timer (which sync.Cond cannot).
type chanMutex struct {
	sync.Mutex
	changed chan struct{}
}

func (m *chanMutex) init() { m.changed = make(chan struct{}) }

// broadcast wakes every waiter. Call with m held.
func (m *chanMutex) broadcast() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// wait releases m until the next broadcast or the deadline dl (zero: none).
// Call with m held; it is held again on return.
func (m *chanMutex) wait(dl time.Time) error {
	var timeout <-chan time.Time
	if !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	ch := m.changed
	m.Unlock()
	select {
	case <-ch:
	case <-timeout:
	}
	m.Lock()
	return nil
}

// serverConn is the server's end of a BOSH session: reads return the
// synthetic stream built from the client's requests, writes go to the
// session, which cuts them into response payloads. It implements
// io.ByteReader so a decoder made after a stream restart reads no byte
// ahead.
type serverConn struct {
	s *session

	// idle gets a token whenever a read finds no input and waits: the
	// server has handled everything it was given (see session.flush).
	idle chan struct{}

	mu        chanMutex
	in        []byte
	off       int
	total     uint64    // bytes pushed so far
	consumed  uint64    // bytes read so far
	blockedAt time.Time // when a read last started waiting with all input read
	eof       bool      // no input after in
	closed    bool
	rdl       time.Time
	wdl       time.Time
}

var _ io.ByteReader = (*serverConn)(nil)

func newServerConn(s *session) *serverConn {
	c := &serverConn{s: s, idle: make(chan struct{}, 1)}
	c.mu.init()
	return c
}

// push appends client bytes to the server's input.
func (c *serverConn) push(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.eof || c.closed {
		return
	}
	c.in = append(c.in, p...)
	c.total += uint64(len(p))
	c.blockedAt = time.Time{}
	c.mu.broadcast()
}

// pushed returns the number of bytes pushed so far.
func (c *serverConn) pushed() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total
}

// blockedSince reports when the server started waiting for input after
// reading at least mark bytes, if it is waiting now.
func (c *serverConn) blockedSince(mark uint64) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.consumed < mark || c.off < len(c.in) || c.blockedAt.IsZero() {
		return time.Time{}, false
	}
	return c.blockedAt, true
}

// buffered reports the input bytes the server has not read yet.
func (c *serverConn) buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.in) - c.off
}

// endInput makes reads return io.EOF once the buffered input is read.
func (c *serverConn) endInput() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.eof = true
	c.mu.broadcast()
}

func (c *serverConn) readable() error {
	for {
		switch {
		case c.closed:
			return net.ErrClosed
		case c.off < len(c.in):
			return nil
		case c.eof:
			return io.EOF
		}
		if c.blockedAt.IsZero() {
			c.blockedAt = time.Now()
			select {
			case c.idle <- struct{}{}:
			default:
			}
		}
		if err := c.mu.wait(c.rdl); err != nil {
			c.blockedAt = time.Time{}
			return err
		}
	}
}

func (c *serverConn) advance(n int) {
	c.off += n
	c.consumed += uint64(n)
	if c.off == len(c.in) {
		c.in, c.off = c.in[:0], 0
	}
}

// Read reads client bytes.
func (c *serverConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.readable(); err != nil {
		return 0, err
	}
	n := copy(p, c.in[c.off:])
	c.advance(n)
	return n, nil
}

// ReadByte reads one client byte.
func (c *serverConn) ReadByte() (byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.readable(); err != nil {
		return 0, err
	}
	b := c.in[c.off]
	c.advance(1)
	return b, nil
}

// Write hands server bytes to the session.
func (c *serverConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	closed, dl := c.closed, c.wdl
	c.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	if !dl.IsZero() && !time.Now().Before(dl) {
		return 0, os.ErrDeadlineExceeded
	}
	return c.s.fromServer(p)
}

// Close ends the connection for both sides.
func (c *serverConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.broadcast()
	c.mu.Unlock()
	c.s.serverClosed()
	return nil
}

type addr string

func (a addr) Network() string { return "bosh" }
func (a addr) String() string  { return string(a) }

// LocalAddr returns a placeholder address.
func (c *serverConn) LocalAddr() net.Addr { return addr("bosh-cm") }

// RemoteAddr returns the session id as the peer's address.
func (c *serverConn) RemoteAddr() net.Addr { return addr("bosh:" + c.s.sid) }

// SetDeadline sets both deadlines and wakes pending calls.
func (c *serverConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.rdl, c.wdl = t, t
	c.mu.broadcast()
	c.mu.Unlock()
	c.wakeWriters()
	return nil
}

// SetReadDeadline sets the read deadline and wakes pending reads.
func (c *serverConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	c.mu.broadcast()
	return nil
}

// SetWriteDeadline sets the write deadline and wakes pending writes.
func (c *serverConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.wdl = t
	c.mu.Unlock()
	c.wakeWriters()
	return nil
}

// writeDeadline returns the current write deadline.
func (c *serverConn) writeDeadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wdl
}

// wakeWriters wakes a Write blocked in the session so that it looks at the
// new deadline. Lock order is session, then conn: it must be called without
// c.mu held.
func (c *serverConn) wakeWriters() {
	c.s.mu.Lock()
	c.s.mu.broadcast()
	c.s.mu.Unlock()
}
