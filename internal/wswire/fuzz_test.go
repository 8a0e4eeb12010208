package wswire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// fakeConn is a net.Conn reading from a fixed byte stream and discarding
// writes.
type fakeConn struct {
	net.Conn
	r io.Reader
}

func (f fakeConn) Read(p []byte) (int, error)       { return f.r.Read(p) }
func (f fakeConn) Write(p []byte) (int, error)      { return len(p), nil }
func (f fakeConn) Close() error                     { return nil }
func (f fakeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzReadStream feeds arbitrary bytes as frames from a server: the
// reader never panics, and whatever it delivers before failing is a
// stream that began with a header.
func FuzzReadStream(f *testing.F) {
	f.Add(rawFrame(true, opText, []byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='1'/>"), false))
	f.Add(append(rawFrame(true, opText, []byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='1'/>"), false),
		rawFrame(false, opText, []byte("<message><bo"), false)...))
	f.Add(rawFrame(true, opClose, []byte{3, 232}, false))
	f.Add([]byte{0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ws := NewConn(fakeConn{r: bytes.NewReader(data)}, bufio.NewReader(bytes.NewReader(data)), true, 1<<16)
		sc := NewStreamConn(ws, StreamConfig{Client: true, StripStartTLS: true})
		out, err := io.ReadAll(sc)
		if err == nil && len(out) > 0 && !bytes.HasPrefix(out, []byte("<stream:stream ")) {
			t.Fatalf("a clean stream that does not begin with a header: %q", out)
		}
		if err != nil && len(out) > 0 && !bytes.HasPrefix(out, []byte("<stream:stream ")) && !errors.Is(err, ErrFraming) {
			t.Fatalf("delivered %q before %v", out, err)
		}
	})
}
