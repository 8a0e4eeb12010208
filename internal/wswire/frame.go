package wswire

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"unicode/utf8"
)

// Errors returned by the package. Each failure wraps one of them.
var (
	// ErrHandshake means the opening handshake failed: not a WebSocket
	// upgrade, a wrong accept key, or no agreement on the xmpp subprotocol.
	ErrHandshake = errors.New("wswire: handshake failed")
	// ErrProtocol means the peer broke RFC 6455 (bad frame, unmasked client
	// frame, binary or invalid UTF-8 text where XMPP wants text).
	ErrProtocol = errors.New("wswire: protocol error")
	// ErrTooLarge means a message exceeded the size limit.
	ErrTooLarge = errors.New("wswire: message too large")
	// ErrFraming means a message is not what RFC 7395 allows: not exactly
	// one complete XML element.
	ErrFraming = errors.New("wswire: message is not one complete element")
	// ErrClosedByPeer means the peer closed the WebSocket connection (with
	// a close frame or without one) before the XMPP stream was closed.
	ErrClosedByPeer = errors.New("wswire: connection closed by peer")
)

// Opcodes of RFC 6455 §5.2.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close status codes of RFC 6455 §7.4.1.
const (
	CloseNormal      = 1000
	CloseGoingAway   = 1001
	CloseProtocol    = 1002
	CloseInvalidData = 1007
	CloseTooBig      = 1009
	closeNoStatus    = 1005
)

// DefaultMaxMessage is the largest message a Conn accepts when NewConn is
// given 0.
const DefaultMaxMessage = 4 << 20

// CloseError is the close frame the peer sent.
type CloseError struct {
	Code   int
	Reason string
}

// Error describes the close frame: its code and reason.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("close frame %d", e.Code)
	}
	return fmt.Sprintf("close frame %d (%s)", e.Code, e.Reason)
}

// Conn is one end of a WebSocket connection after the handshake. One
// goroutine reads at a time; writes are safe for concurrent use (pings and
// close frames are written from the reading goroutine too).
type Conn struct {
	nc     net.Conn
	br     *bufio.Reader
	client bool // this end masks what it sends and refuses masked frames
	max    int

	msg    []byte // message being put together from fragments
	inMsg  bool
	broken error // a read failed inside a frame: the stream is lost

	wmu       sync.Mutex
	wbuf      []byte
	closeSent bool
	closeErr  error // why writes fail once the close frame is out: the read side's reason
	onPong    func()
}

// NewConn returns the WebSocket connection on nc. br holds what the
// handshake read past the response (nil: read nc directly); client says
// which end this is; max bounds a message (0: DefaultMaxMessage).
func NewConn(nc net.Conn, br *bufio.Reader, client bool, max int) *Conn {
	if br == nil {
		br = bufio.NewReader(nc)
	}
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &Conn{nc: nc, br: br, client: client, max: max}
}

// NetConn returns the connection under c.
func (c *Conn) NetConn() net.Conn { return c.nc }

// OnPong sets a function called (from the reading goroutine) for every
// pong received.
func (c *Conn) OnPong(f func()) {
	c.wmu.Lock()
	c.onPong = f
	c.wmu.Unlock()
}

// ReadMessage returns the next text message, put together from its
// fragments. Pings are answered and pongs reported on the way. A close
// frame is answered with one (unless one was sent already) and returned
// as a *CloseError. A protocol violation or a message over the limit
// sends the matching close frame and returns an error wrapping
// ErrProtocol or ErrTooLarge. A read deadline that passes between frames
// returns the timeout and leaves c usable; one inside a frame does not.
func (c *Conn) ReadMessage() ([]byte, error) {
	if c.broken != nil {
		return nil, c.broken
	}
	for {
		fin, op, payload, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		switch op {
		case opPing:
			if err := c.write(opPong, payload); err != nil {
				return nil, err
			}
			continue
		case opPong:
			c.wmu.Lock()
			f := c.onPong
			c.wmu.Unlock()
			if f != nil {
				f()
			}
			continue
		case opClose:
			ce := &CloseError{Code: closeNoStatus}
			if len(payload) >= 2 {
				ce.Code = int(binary.BigEndian.Uint16(payload))
				ce.Reason = string(payload[2:])
			}
			code := ce.Code
			if code == closeNoStatus {
				code = CloseNormal
			}
			c.setCloseErr(fmt.Errorf("%w with %w: %w", ErrClosedByPeer, ce, io.ErrUnexpectedEOF))
			_ = c.WriteClose(code, "")
			c.broken = ce
			return nil, ce
		case opBinary:
			return nil, c.fail(CloseInvalidData, fmt.Errorf("%w: binary message (XMPP over WebSocket is text)", ErrProtocol))
		case opText:
			if c.inMsg {
				return nil, c.fail(CloseProtocol, fmt.Errorf("%w: new message inside a fragmented one", ErrProtocol))
			}
			c.inMsg = true
			c.msg = append(c.msg[:0], payload...)
		case opContinuation:
			if !c.inMsg {
				return nil, c.fail(CloseProtocol, fmt.Errorf("%w: continuation without a message", ErrProtocol))
			}
			c.msg = append(c.msg, payload...)
		default:
			return nil, c.fail(CloseProtocol, fmt.Errorf("%w: unknown opcode %#x", ErrProtocol, op))
		}
		if !fin {
			continue
		}
		c.inMsg = false
		if !utf8.Valid(c.msg) {
			return nil, c.fail(CloseInvalidData, fmt.Errorf("%w: text message is not UTF-8", ErrProtocol))
		}
		out := c.msg
		c.msg = nil
		return out, nil
	}
}

// fail sends a close frame with code, marks c broken and returns err,
// which later writes return too.
func (c *Conn) fail(code int, err error) error {
	c.setCloseErr(err)
	_ = c.WriteClose(code, "")
	c.broken = err
	return err
}

// readFrame reads one frame. The header is peeked before it is consumed,
// so a deadline while waiting for it loses nothing.
func (c *Conn) readFrame() (fin bool, op byte, payload []byte, err error) {
	h, err := c.br.Peek(2)
	if err != nil {
		return false, 0, nil, c.readErr(err, len(h) > 0)
	}
	fin, op = h[0]&0x80 != 0, h[0]&0x0f
	masked := h[1]&0x80 != 0
	n := uint64(h[1] & 0x7f)
	size := 2
	switch n {
	case 126:
		size += 2
	case 127:
		size += 8
	}
	if masked {
		size += 4
	}
	h, err = c.br.Peek(size)
	if err != nil {
		return false, 0, nil, c.readErr(err, true)
	}
	switch n {
	case 126:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		n = binary.BigEndian.Uint64(h[2:])
	}
	var key [4]byte
	if masked {
		copy(key[:], h[size-4:])
	}
	_, _ = c.br.Discard(size)
	switch {
	case h[0]&0x70 != 0:
		return false, 0, nil, c.fail(CloseProtocol, fmt.Errorf("%w: reserved bits set", ErrProtocol))
	case masked == c.client:
		if c.client {
			return false, 0, nil, c.fail(CloseProtocol, fmt.Errorf("%w: masked frame from the server", ErrProtocol))
		}
		return false, 0, nil, c.fail(CloseProtocol, fmt.Errorf("%w: unmasked frame from the client", ErrProtocol))
	case op >= opClose && (n > 125 || !fin):
		return false, 0, nil, c.fail(CloseProtocol, fmt.Errorf("%w: control frame fragmented or over 125 bytes", ErrProtocol))
	case op < opClose && n+uint64(len(c.msg)) > uint64(c.max):
		return false, 0, nil, c.fail(CloseTooBig, fmt.Errorf("%w: over %d bytes", ErrTooLarge, c.max))
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, payload); err != nil {
		return false, 0, nil, c.readErr(err, true)
	}
	if masked {
		maskBytes(payload, key)
	}
	return fin, op, payload, nil
}

// setCloseErr records why writes fail after the close frame: the reason
// the connection ends, not the close frame itself, is what a writer should
// report.
func (c *Conn) setCloseErr(err error) {
	c.wmu.Lock()
	if c.closeErr == nil {
		c.closeErr = err
	}
	c.wmu.Unlock()
}

// readErr turns a read error into what ReadMessage returns: a timeout
// before the frame began is passed on as it is; the end of the connection
// is ErrClosedByPeer; anything inside a frame breaks c.
func (c *Conn) readErr(err error, inFrame bool) error {
	if !inFrame && errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("%w without a close frame: %w", ErrClosedByPeer, io.ErrUnexpectedEOF)
	}
	c.broken = err
	return err
}

// maskBytes applies the masking of RFC 6455 §5.3 (its own inverse).
func maskBytes(b []byte, key [4]byte) {
	k := binary.LittleEndian.Uint32(key[:])
	k64 := uint64(k) | uint64(k)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k64)
	}
	for ; i < len(b); i++ {
		b[i] ^= key[i&3]
	}
}

// WriteText sends p as one text message in one frame.
func (c *Conn) WriteText(p []byte) error { return c.write(opText, p) }

// Ping sends a ping with payload p (at most 125 bytes).
func (c *Conn) Ping(p []byte) error { return c.write(opPing, p) }

// WriteClose sends a close frame with code and reason, once; later calls
// do nothing.
func (c *Conn) WriteClose(code int, reason string) error {
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	if len(p) > 125 {
		p = p[:125]
	}
	return c.write(opClose, p)
}

// CloseSent reports whether a close frame went out.
func (c *Conn) CloseSent() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closeSent
}

// write sends one final frame of type op in a single Write.
func (c *Conn) write(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		if op == opClose {
			return nil
		}
		if c.closeErr != nil {
			return c.closeErr
		}
		return fmt.Errorf("%w: close frame already sent", net.ErrClosed)
	}
	b := append(c.wbuf[:0], 0x80|op)
	maskBit := byte(0)
	if c.client {
		maskBit = 0x80
	}
	switch n := len(p); {
	case n <= 125:
		b = append(b, maskBit|byte(n))
	case n <= 0xffff:
		b = append(b, maskBit|126, byte(n>>8), byte(n))
	default:
		b = append(b, maskBit|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	at := len(b)
	var key [4]byte
	if c.client {
		_, _ = rand.Read(key[:])
		b = append(b, key[:]...)
		at += 4
	}
	b = append(b, p...)
	if c.client {
		maskBytes(b[at:], key)
	}
	if op == opClose {
		c.closeSent = true
	}
	_, err := c.nc.Write(b)
	if cap(b) <= 64<<10 {
		c.wbuf = b // keep ordinary buffers, not the one of a huge message
	}
	return err
}
