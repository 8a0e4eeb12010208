package transport

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp/stream"

	"crier/internal/xmlsplit"
)

// Direction says which way an element travelled.
type Direction int

// The two directions of a stream.
const (
	In  Direction = iota // from the server to us
	Out                  // from us to the server
)

// String returns "in" or "out".
func (d Direction) String() string {
	if d == Out {
		return "out"
	}
	return "in"
}

// Tap observes every top-level element of the stream once it is encrypted
// (after STARTTLS, from the first byte of direct TLS or BOSH): stanzas and
// nonzas in both directions, including the SASL exchange, the stream
// features and the iq results that mellium consumes itself.
//
// Element is called from the goroutine reading or writing the connection,
// in stream order for each direction, while that direction is locked: it
// must not block, must not call Conn.Inject (hand that to another
// goroutine), and must not keep raw after returning unless it copies it. The name carries the resolved
// namespace (jabber:client for stanzas without their own xmlns). The stream
// header and end are not reported.
//
// The payloads of SASL <auth/> and <response/> are replaced by
// "[redacted]" in raw, so that a tap which logs cannot leak a password.
type Tap interface {
	Element(dir Direction, name xml.Name, raw []byte)
}

// TapFunc adapts a function to the Tap interface.
type TapFunc func(dir Direction, name xml.Name, raw []byte)

// Element calls f.
func (f TapFunc) Element(dir Direction, name xml.Name, raw []byte) { f(dir, name, raw) }

const (
	nsStream = "http://etherx.jabber.org/streams"
	nsSASL   = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsTLS    = "urn:ietf:params:xml:ns:xmpp-tls"
	nsBind   = "urn:ietf:params:xml:ns:xmpp-bind"
	nsClient = "jabber:client"
	// Past these limits the tap stops observing (the stream goes on, and
	// the decoder behind it judges the XML): the size of one element, its
	// nesting and the attributes of one tag. Real stanzas stay far below.
	maxElement = 16 << 20
	// maxDepth bounds the nesting the tap follows (its stack holds a name
	// per level). Servers limit stanzas to some hundreds of KiB, which a
	// hostile client can fill with nesting: the tap must follow that, so
	// the bound is far above it, and the size limit bounds the rest.
	maxDepth = 1 << 17
	maxAttrs = 512
)

// tapConn is the net.Conn handed to mellium. It passes bytes through
// unchanged, cuts both directions into elements for the Tap and for error
// classification, and is where elements can be injected between the ones
// mellium writes.
//
// It deliberately has no ConnectionState method: without it mellium never
// offers SCRAM-*-PLUS, whose channel binding fails against some servers
// over TLS 1.3.
type tapConn struct {
	net.Conn
	tap    Tap
	onStop func(Direction, string) // Options.OnTapStop
	log    *slog.Logger
	obs    *observed

	// Reads go through one buffer owned by the connection rather than by
	// mellium's decoder: mellium builds a new decoder after each stream
	// restart, and read-ahead kept here survives that. ReadByte makes
	// encoding/xml use this buffer directly.
	//
	// Only one decoder reads at a time (negotiation, then Serve), so
	// rbuf[rpos:] belongs to that reader and a byte is taken without a
	// lock; rmu is held only while the buffer is refilled from the socket
	// (encoding/xml asks for every byte separately, and a lock per byte
	// cost about a sixth of the bot's CPU under load). rmu also lets
	// Close drain the connection itself when nothing else is reading.
	rmu    sync.Mutex
	rbuf   []byte            // bytes read from the socket, not yet consumed
	rpos   int               // next unread byte in rbuf
	rspace [4096]byte        // backing array of rbuf
	in     xmlsplit.Splitter // touched only under rmu
	inNS   string
	inDead bool
	// inHeader: the next incoming piece is a stream header (at the start
	// and after SASL success).
	inHeader bool

	// wmu serialises writes: mellium's, and injected elements, which may
	// only go out when mellium's last write ended on an element boundary.
	wmu     sync.Mutex
	out     xmlsplit.Splitter
	outNS   string
	outDead bool
	// outEnded: </stream:stream> has gone out. Nothing may follow it
	// (RFC 6120 §4.4), so injected elements are refused from then on and
	// those still waiting for a boundary are dropped: they are stream
	// management answers and requests, moot once the stream is over.
	outEnded bool
	pending  [][]byte // injected elements waiting for a boundary

	ended     chan struct{} // closed when the server ends its stream or reads fail
	endOnce   sync.Once
	closeOnce sync.Once
	closed    chan struct{}

	// Stream management (sm.go) follows both directions from the tap hooks.
	sm *smState
}

// NetConn returns the connection under the tap (for statistics such as
// the BOSH client's request counts).
func (tc *tapConn) NetConn() net.Conn { return tc.Conn }

func newTapConn(c net.Conn, tap Tap, log *slog.Logger) *tapConn {
	tc := &tapConn{
		Conn:     c,
		tap:      tap,
		log:      log,
		obs:      &observed{},
		inNS:     nsClient,
		inHeader: true,
		outNS:    nsClient,
		ended:    make(chan struct{}),
		closed:   make(chan struct{}),
		sm:       newSMState(log),
	}
	for _, sp := range []*xmlsplit.Splitter{&tc.in, &tc.out} {
		sp.Max, sp.MaxDepth, sp.MaxAttrs = maxElement, maxDepth, maxAttrs
	}
	tc.in.NamespacesOnly = true // the tap resolves names, nothing more
	tc.out.NamespacesOnly = true
	return tc
}

// rawReader feeds every chunk read from the socket to the inbound splitter
// before the decoder reads it, and takes out the whitespace between
// top-level elements (see observeIn): a Read may then return 0 bytes and
// no error.
type rawReader struct{ tc *tapConn }

func (r rawReader) Read(p []byte) (int, error) {
	n, err := r.tc.Conn.Read(p)
	if n > 0 {
		n = r.tc.observeIn(p[:n])
	}
	if err != nil {
		r.tc.endOnce.Do(func() { close(r.tc.ended) })
	}
	return n, err
}

// Read reads from the connection: what is buffered first.
func (tc *tapConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if tc.rpos >= len(tc.rbuf) {
		if err := tc.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, tc.rbuf[tc.rpos:])
	tc.rpos += n
	return n, nil
}

// ReadByte reads one byte; with it encoding/xml reads without read-ahead
// of its own.
func (tc *tapConn) ReadByte() (byte, error) {
	if tc.rpos >= len(tc.rbuf) {
		if err := tc.fill(); err != nil {
			return 0, err
		}
	}
	b := tc.rbuf[tc.rpos]
	tc.rpos++
	return b, nil
}

// fill reads the next chunk from the socket into the empty buffer. It
// returns an error only when no byte came. A chunk that was nothing but
// whitespace between elements (a keepalive) leaves nothing for the decoder,
// so fill reads on; that is not a read without progress.
func (tc *tapConn) fill() error {
	tc.rmu.Lock()
	defer tc.rmu.Unlock()
	for empty := 0; empty < 100; { // a Read may legitimately return 0 bytes and no error
		got, err := tc.Conn.Read(tc.rspace[:])
		n := 0
		if got > 0 {
			n = tc.observeIn(tc.rspace[:got])
		}
		tc.rbuf, tc.rpos = tc.rspace[:n], 0
		if n > 0 {
			return nil
		}
		if err != nil {
			tc.endOnce.Do(func() { close(tc.ended) })
			return err
		}
		if got == 0 {
			empty++
		}
	}
	return io.ErrNoProgress
}

// Write writes p unchanged, then any injected elements if p ended on an
// element boundary.
func (tc *tapConn) Write(p []byte) (int, error) {
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	n, err := tc.Conn.Write(p)
	if n > 0 {
		tc.observeOut(p[:n])
	}
	if err != nil {
		return n, err
	}
	if len(tc.pending) > 0 && tc.atBoundary() {
		// p is written: a failure of the injected elements after it is
		// theirs (the next write or read sees the broken connection), not
		// p's, which the caller would otherwise write again.
		_ = tc.flushPending()
	}
	return n, nil
}

// atBoundary reports whether the outgoing stream is between elements.
// The caller holds wmu.
func (tc *tapConn) atBoundary() bool { return !tc.outDead && tc.out.Buffered() == 0 }

// flushPending writes the queued injected elements. The caller holds wmu.
func (tc *tapConn) flushPending() error {
	if tc.outEnded {
		tc.pending = nil
		return nil
	}
	for len(tc.pending) > 0 {
		raw := tc.pending[0]
		tc.pending = tc.pending[1:]
		if _, err := tc.Conn.Write(raw); err != nil {
			return err
		}
		tc.observeOut(raw)
	}
	return nil
}

// inject queues one complete element and writes it at once if the stream
// is between elements; otherwise the Write that completes mellium's
// current element sends it. The write itself may block like any write.
func (tc *tapConn) inject(raw []byte) error {
	select {
	case <-tc.closed:
		return ErrClosed
	default:
	}
	if err := checkElement(raw); err != nil {
		return err
	}
	return tc.injectOwn(bytes.Clone(raw))
}

// injectOwn is inject for the transport's own elements (stream management
// requests and answers): known to be one complete element, not checked,
// not copied.
func (tc *tapConn) injectOwn(raw []byte) error {
	tc.wmu.Lock()
	defer tc.wmu.Unlock()
	if tc.outDead {
		return fmt.Errorf("%w: the outgoing stream could not be followed", ErrProtocol)
	}
	if tc.outEnded {
		return fmt.Errorf("%w: the stream has ended", ErrClosed)
	}
	tc.pending = append(tc.pending, raw)
	if tc.atBoundary() {
		return tc.flushPending()
	}
	return nil
}

// checkElement verifies raw holds exactly one complete element.
func checkElement(raw []byte) error {
	var s xmlsplit.Splitter
	if _, err := s.Feed([]byte("<stream:stream xmlns:stream='" + nsStream + "'>")); err != nil {
		return err
	}
	evs, err := s.Feed(raw)
	if err != nil || s.Buffered() != 0 || len(evs) != 1 || evs[0].Kind != xmlsplit.Element {
		return fmt.Errorf("%w: inject needs exactly one complete element", ErrConfig)
	}
	return nil
}

// Close closes the socket once.
func (tc *tapConn) Close() error {
	var err error
	tc.closeOnce.Do(func() {
		close(tc.closed)
		err = tc.Conn.Close()
	})
	return err
}

// observeIn follows the incoming bytes p and returns how many of them are
// left for the decoder once the whitespace between top-level elements is
// taken out of p (in place: the decoder gets p[:n]). RFC 6120 allows such
// whitespace anywhere between elements, and servers send it (keepalives,
// pretty-printed negotiation), but mellium's negotiator fails on it
// ("invalid feature list of type xml.CharData") when it comes before
// <stream:features>. It carries nothing, so the decoder never sees it; the
// tap has seen it.
func (tc *tapConn) observeIn(p []byte) int {
	whole, keep := p, 0
	for len(p) > 0 {
		k, used := tc.observeInPart(p)
		keep += copy(whole[keep:], p[:k]) // moves down: keep never passes p's start
		if used <= 0 {
			used = len(p)
		}
		p = p[used:]
	}
	return keep
}

// observeInPart follows p up to the end of the stream it belongs to (a SASL
// success restarts it). It moves the bytes for the decoder to p[:keep] and
// reports how much of p it followed.
func (tc *tapConn) observeInPart(p []byte) (keep, used int) {
	if tc.inDead {
		return len(p), len(p)
	}
	if tc.inHeader && tc.in.Buffered() == 0 {
		// Whitespace before a stream header (after a restart) is allowed
		// too, and means as little.
		k := 0
		for k < len(p) && isSpace(p[k]) {
			k++
		}
		if k > 0 {
			return 0, k
		}
	}
	// The events cover the bytes the splitter held from earlier chunks
	// followed by p: the first event starts that many bytes before p.
	at := -tc.in.Buffered()
	from := 0 // p[from:at] is to be kept
	evs, err := tc.in.Feed(p)
	for _, ev := range evs {
		evStart := at
		at += len(ev.Raw)
		if ev.Kind == xmlsplit.Space && evStart >= 0 {
			// Whitespace is never held back, so all of it is in p.
			keep += copy(p[keep:], p[from:evStart])
			from = at
		}
		switch ev.Kind {
		case xmlsplit.StreamStart:
			tc.inNS = defaultNS(ev.Attr)
			tc.inHeader = false
		case xmlsplit.StreamEnd:
			tc.endOnce.Do(func() { close(tc.ended) })
		case xmlsplit.Element:
			name := resolve(ev.Name, ev.Attr, tc.inNS)
			tc.obs.see(name, ev.Raw)
			tc.sm.seeIn(name, ev.Raw) // stream management (sm.go)
			if tc.tap != nil {
				tc.tap.Element(In, name, ev.Raw)
			}
			if name.Space == nsSASL && name.Local == "success" {
				// Both sides restart their streams after SASL success: the
				// next bytes each way are new stream headers. What p holds
				// after <success/> belongs to the new stream, so the
				// splitter's view of it (and any error it found there) is
				// dropped and the rest of p is followed again.
				tc.in.Reset()
				tc.inHeader = true
				tc.wmu.Lock()
				tc.out.Reset()
				tc.wmu.Unlock()
				keep += copy(p[keep:], p[from:at])
				return keep, at
			}
		}
	}
	keep += copy(p[keep:], p[from:])
	if err != nil {
		// Without following the stream the tap sees no <a/> and counts
		// no stanza: acknowledgements would never come and the outbox
		// would wait for them. End the connection now, and not as a
		// resumable one (its counts are lost): the next one starts
		// fresh.
		tc.inDead = true
		tc.sm.untracked(err)
		tc.log.Warn("tap stopped following the incoming stream; closing the connection, which cannot be resumed", "err", err)
		if tc.onStop != nil {
			tc.onStop(In, xmlsplit.Limit(err))
		}
		go tc.Conn.Close()
	}
	return keep, len(p)
}

// observeOut runs with wmu held.
func (tc *tapConn) observeOut(p []byte) {
	if tc.outDead {
		return
	}
	evs, err := tc.out.Feed(p)
	for _, ev := range evs {
		switch ev.Kind {
		case xmlsplit.StreamStart:
			tc.outNS = defaultNS(ev.Attr)
		case xmlsplit.StreamEnd:
			tc.outEnded = true
		case xmlsplit.Element:
			name := resolve(ev.Name, ev.Attr, tc.outNS)
			tc.sm.seeOut(name) // stream management (sm.go)
			if tc.tap != nil {
				tc.tap.Element(Out, name, redact(name, ev.Raw))
			}
		}
	}
	if err != nil {
		tc.outDead = true
		tc.log.Warn("tap stopped following the outgoing stream", "err", err)
		if tc.onStop != nil {
			tc.onStop(Out, xmlsplit.Limit(err))
		}
	}
}

// defaultNS returns the default namespace declared on a stream header.
func defaultNS(attrs []xml.Attr) string {
	for _, a := range attrs {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			return a.Value
		}
	}
	return nsClient
}

// resolve turns a raw (prefixed) element name into its namespace-qualified
// form, using the element's own declarations, then the stream's.
func resolve(raw xml.Name, attrs []xml.Attr, def string) xml.Name {
	if raw.Space == "" {
		for _, a := range attrs {
			if a.Name.Space == "" && a.Name.Local == "xmlns" {
				return xml.Name{Space: a.Value, Local: raw.Local}
			}
		}
		return xml.Name{Space: def, Local: raw.Local}
	}
	for _, a := range attrs {
		if a.Name.Space == "xmlns" && a.Name.Local == raw.Space {
			return xml.Name{Space: a.Value, Local: raw.Local}
		}
	}
	if raw.Space == "stream" {
		return xml.Name{Space: nsStream, Local: raw.Local}
	}
	return raw
}

// redact hides the payload of the SASL elements that carry credentials.
func redact(name xml.Name, raw []byte) []byte {
	if name.Space != nsSASL || (name.Local != "auth" && name.Local != "response") {
		return raw
	}
	end := bytes.IndexByte(raw, '>')
	if end < 1 || raw[end-1] == '/' {
		return raw
	}
	closing := bytes.LastIndexByte(raw, '<')
	if closing <= end {
		return raw
	}
	out := make([]byte, 0, end+1+len("[redacted]")+len(raw)-closing)
	out = append(out, raw[:end+1]...)
	out = append(out, "[redacted]"...)
	return append(out, raw[closing:]...)
}

// observed records what classification needs from the incoming stream:
// the SASL mechanisms offered and a SASL failure condition.
type observed struct {
	mu        sync.Mutex
	mechs     []string
	failure   string
	selected  string
	streamErr *stream.Error
}

func (o *observed) see(name xml.Name, raw []byte) {
	switch {
	case name.Space == nsStream && name.Local == "features":
		var f struct {
			Mechs []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
		}
		if xml.Unmarshal(raw, &f) == nil && len(f.Mechs) > 0 {
			o.mu.Lock()
			o.mechs = f.Mechs
			o.mu.Unlock()
		}
	case name.Space == nsStream && name.Local == "error":
		var se stream.Error
		if xml.Unmarshal(raw, &se) == nil {
			o.mu.Lock()
			o.streamErr = &se
			o.mu.Unlock()
		}
	case name.Space == nsSASL && name.Local == "failure":
		cond := "failure"
		var f struct {
			Any []struct{ XMLName xml.Name } `xml:",any"`
		}
		if xml.Unmarshal(raw, &f) == nil {
			for _, c := range f.Any {
				if c.XMLName.Local != "text" {
					cond = c.XMLName.Local
					break
				}
			}
		}
		o.mu.Lock()
		o.failure = cond
		o.mu.Unlock()
	}
}

func (o *observed) saslFailure() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failure
}

func (o *observed) streamError() *stream.Error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.streamErr
}

func (o *observed) offered() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.mechs...)
}

func (o *observed) setSelected(m string) {
	o.mu.Lock()
	o.selected = m
	o.mu.Unlock()
}

func (o *observed) mechanism() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.selected
}

// noCommonMechanism reports whether the server offered mechanisms but
// none was started.
func (o *observed) noCommonMechanism() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.mechs) > 0 && o.selected == ""
}

// awaitEnd waits at most d for the server to end its stream. If another
// goroutine (Serve) is blocked reading, it will see the end and this only
// waits; if nothing is reading, awaitEnd reads and discards itself.
func (tc *tapConn) awaitEnd(d time.Duration) {
	if !tc.rmu.TryLock() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-tc.ended:
		case <-t.C:
		}
		return
	}
	defer tc.rmu.Unlock()
	_ = tc.Conn.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for range 4096 { // the read deadline ends this loop long before
		select {
		case <-tc.ended:
			return
		default:
		}
		if _, err := (rawReader{tc}).Read(buf); err != nil {
			return
		}
	}
}
