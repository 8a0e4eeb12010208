package bosh

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"crier/internal/boshwire"
	"crier/internal/xmlsplit"
)

// Errors returned by the package.
var (
	// ErrConfig reports an unusable Config.
	ErrConfig = errors.New("bosh: bad config")
	// ErrHTTP reports an HTTP request that failed after its retries; it wraps
	// the last transport error.
	ErrHTTP = errors.New("bosh: request failed")
	// ErrProtocol reports a response the client could not understand.
	ErrProtocol = errors.New("bosh: protocol error")
)

// Config says where and how to connect.
type Config struct {
	URL    string       // https://host/http-bind
	Domain string       // the XMPP domain (the 'to' of the session request)
	Client *http.Client // TLS settings and proxy; nil = a client of its own. Close closes its idle connections.
	Wait   int          // seconds a request may be held; 0 = 60
	Hold   int          // 0 = 1

	// MaxRetries is how many times a failed HTTP request is sent again with
	// the same rid before the session is given up; 0 = 3, negative = none.
	MaxRetries int
	// RetryDelay is the pause before the first retry (doubled for each next
	// one); 0 = 250ms.
	RetryDelay time.Duration
	// Keys turns the key sequence of XEP-0124 §15 on (KeysAuto: only over
	// plain http, where it protects the session from injected requests).
	Keys KeyMode
	// CloseTimeout bounds how long Close waits for the answer to its
	// terminate request; 0 = 3s.
	CloseTimeout time.Duration
	// Logger receives debug and warning messages; nil = discard.
	Logger *slog.Logger
}

// KeyMode says when a Conn uses XEP-0124 key sequencing.
type KeyMode int

// Key modes.
const (
	// KeysAuto uses keys over http:// and not over https://, whose
	// connection already protects the session.
	KeysAuto KeyMode = iota
	// KeysOn always uses keys.
	KeysOn
	// KeysOff never uses keys.
	KeysOff
)

// Stats counts the work done by a Conn.
type Stats struct {
	Requests         int64 // HTTP requests sent, retries included
	EmptyRequests    int64 // requests that carried no element (long polls)
	Retries          int64 // requests sent again with the same rid
	StanzasSent      int64 // message, presence and iq elements sent
	StanzasReceived  int64 // message, presence and iq elements received
	ElementsSent     int64 // all top-level elements sent (stanzas and nonzas)
	ElementsReceived int64 // all top-level elements received
	// Condition is the terminal binding condition of the session's end, if
	// the connection manager ended it with one.
	Condition string
}

// Session states.
const (
	stNew         = iota // no stream header written yet
	stCreating           // session creation request in flight
	stOpen               // session established
	stTerminating        // terminate request sent
	stDone               // ended: terminated, failed or closed
)

// Kinds of queued outgoing items and of requests.
const (
	kindData = iota
	kindCreate
	kindRestart
	kindTerminate
)

type outItem struct {
	kind   int // kindData, kindRestart or kindTerminate
	raw    []byte
	stanza bool
}

type request struct {
	rid       uint64
	kind      int
	payload   []byte
	empty     bool
	elements  int
	stanzas   int
	sentAt    time.Time
	writtenAt time.Time // when its first attempt was written out; guarded by Conn.mu
}

// Conn is a BOSH session seen as a net.Conn: writes are XMPP stream bytes
// (stream headers, stanzas, the stream end) and reads are a synthetic XMPP
// stream built from the connection manager's responses. Conn implements
// io.ByteReader so that a new xml.Decoder after a stream restart reads no
// byte ahead. It is safe for concurrent use.
type Conn struct {
	cfg    Config
	url    string
	client *http.Client
	log    *slog.Logger

	ctx    context.Context // ends with Close: aborts every request
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change

	// Outgoing side.
	cut        boshwire.Cutter
	headerSeen bool
	restarted  bool // a restart was written; the new stream header is due
	to, lang   string
	queue      []outItem
	queued     int // bytes in queue

	// Session.
	state      int
	sid        string
	authid     string
	requests   int
	hold       int
	wait       int
	polling    time.Duration
	inactivity time.Duration
	nextRID    uint64
	inflight   int
	lastRID    uint64               // rid of the most recently sent request
	written    bool                 // the request lastRID has been written out
	writtenAt  time.Time            // when it was
	lastDone   bool                 // the request lastRID has been answered
	serverAcks bool                 // the server reports acks (XEP-0124 §9.1)
	ackedRID   uint64               // the highest rid the server acknowledged
	answered   uint64               // every rid up to this one has been answered
	writes     map[uint64]time.Time // when each open request was written
	srtt       time.Duration        // smoothed reaction time of the server (see sampleRTT)
	rttvar     time.Duration        // its variation
	keys       []string             // the key sequence, the next key last (§15)
	pollAfter  time.Time            // no empty request before this
	quietUntil time.Time            // no empty request before this either (replyWindow)

	// Incoming side.
	kinds      map[uint64]int
	responses  map[uint64]*boshwire.Body
	deliverRID uint64
	rbuf       []byte
	roff       int
	eof        bool  // after rbuf: io.EOF
	fatal      error // after rbuf: this error
	remoteEnd  bool  // the connection manager ended the session
	condition  string
	closing    bool
	closed     bool
	rdl, wdl   time.Time

	nReq, nEmpty, nRetry, nStSent, nStRecv, nElSent, nElRecv atomic.Int64
}

// Interface guards.
var (
	_ net.Conn      = (*Conn)(nil)
	_ io.ByteReader = (*Conn)(nil)
	_ net.Addr      = addr("")
)

// maxQueued bounds the bytes waiting to be sent; Write blocks above it.
const maxQueued = 1 << 20

// maxPayload is the most payload bytes put in one request (an element
// larger than this goes alone); it stays below the 256 KiB body limit of
// common connection managers.
const maxPayload = 192 << 10

// replyWindow is how long, after a response that carried elements, the
// client waits for the reader's answer before it sends an empty request to
// keep one pending (see onResponse).
const replyWindow = 2 * time.Millisecond

// maxResponse bounds the size of a response body read from the server.
const maxResponse = 16 << 20

// Dial validates cfg and returns a Conn ready for mellium. It does not touch
// the network: the session is created when the first stream header is
// written, and failures are reported by Read (wrapping the HTTP error). ctx
// only guards the call itself.
func Dial(ctx context.Context, cfg Config) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%w: URL %q", ErrConfig, cfg.URL)
	}
	if cfg.Domain == "" {
		return nil, fmt.Errorf("%w: no domain", ErrConfig)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 60
	}
	if cfg.Hold <= 0 {
		cfg.Hold = 1
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = 3
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 250 * time.Millisecond
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = 3 * time.Second
	}
	c := &Conn{
		cfg:       cfg,
		url:       cfg.URL,
		client:    cfg.Client,
		log:       cfg.Logger,
		changed:   make(chan struct{}),
		kinds:     map[uint64]int{},
		responses: map[uint64]*boshwire.Body{},
	}
	if c.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = http.ProxyFromEnvironment
		c.client = &http.Client{Transport: tr}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.nextRID = randomRID()
	c.deliverRID = c.nextRID
	c.answered = c.nextRID - 1
	if cfg.Keys == KeysOn || (cfg.Keys == KeysAuto && u.Scheme == "http") {
		c.keys = keySequence(keyCount)
	}
	c.wg.Add(1)
	go c.run()
	return c, nil
}

// randomRID picks a starting rid far enough below 2^53 for any session.
func randomRID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return 1<<20 + binary.BigEndian.Uint64(b[:])%(1<<40)
}

// broadcast wakes every waiter. Call with c.mu held.
func (c *Conn) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Stats returns the counters of the session so far.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	cond := c.condition
	c.mu.Unlock()
	return Stats{
		Requests:         c.nReq.Load(),
		EmptyRequests:    c.nEmpty.Load(),
		Retries:          c.nRetry.Load(),
		StanzasSent:      c.nStSent.Load(),
		StanzasReceived:  c.nStRecv.Load(),
		ElementsSent:     c.nElSent.Load(),
		ElementsReceived: c.nElRecv.Load(),
		Condition:        cond,
	}
}

// StatsOf returns the counters of c if it is a BOSH Conn, or wraps one: a
// wrapper is looked through when it has a NetConn() net.Conn method (as
// *tls.Conn does) or an Unwrap() net.Conn method.
func StatsOf(c net.Conn) (Stats, bool) {
	for range 8 { // wrappers do not nest deeper than this in practice
		switch w := c.(type) {
		case *Conn:
			return w.Stats(), true
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		case interface{ Unwrap() net.Conn }:
			c = w.Unwrap()
		default:
			return Stats{}, false
		}
	}
	return Stats{}, false
}

// SID returns the session id, or "" before the session is created.
func (c *Conn) SID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sid
}

// Read reads from the synthetic stream.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.waitReadable(); err != nil {
		return 0, err
	}
	n := copy(p, c.rbuf[c.roff:])
	c.consume(n)
	return n, nil
}

// ReadByte reads one byte of the synthetic stream.
func (c *Conn) ReadByte() (byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.waitReadable(); err != nil {
		return 0, err
	}
	b := c.rbuf[c.roff]
	c.consume(1)
	return b, nil
}

func (c *Conn) consume(n int) {
	c.roff += n
	if c.roff == len(c.rbuf) {
		c.rbuf = c.rbuf[:0]
		c.roff = 0
	}
}

// waitReadable blocks until bytes are buffered or reading must fail. Call
// with c.mu held; it is released while waiting.
func (c *Conn) waitReadable() error {
	for {
		switch {
		case c.closed && !c.eof:
			return net.ErrClosed
		case c.roff < len(c.rbuf):
			// After the stream ended, even a closed Conn lets the reader
			// drain it up to </stream:stream>.
			return nil
		case c.fatal != nil:
			return c.fatal
		case c.eof:
			return io.EOF
		}
		if err := c.waitLocked(c.rdl); err != nil {
			return err
		}
	}
}

// waitLocked waits for the next state change or the deadline dl (zero: none).
// Call with c.mu held.
func (c *Conn) waitLocked(dl time.Time) error {
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
	ch := c.changed
	c.mu.Unlock()
	select {
	case <-ch:
	case <-timeout:
	}
	c.mu.Lock()
	return nil
}

// Write takes XMPP stream bytes, cut anywhere. It returns once the bytes are
// queued; it blocks only while more than 1 MiB waits to be sent.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		case c.closed || c.closing:
			return 0, net.ErrClosed
		case c.fatal != nil:
			return 0, c.fatal
		case c.remoteEnd || c.eof || c.state == stTerminating:
			// The stream is over: whatever mellium still says (its own
			// stream error, the stream end) has nowhere to go.
			return len(p), nil
		}
		if !c.wdl.IsZero() && !time.Now().Before(c.wdl) {
			return 0, os.ErrDeadlineExceeded
		}
		if c.queued <= maxQueued {
			break
		}
		if err := c.waitLocked(c.wdl); err != nil {
			return 0, err
		}
	}
	evs, err := c.cut.Feed(p)
	for _, ev := range evs {
		c.outgoing(ev)
	}
	c.broadcast()
	if err != nil {
		return 0, fmt.Errorf("bosh: outgoing stream: %w", err)
	}
	return len(p), nil
}

// outgoing turns one piece of the outgoing stream into queued work.
func (c *Conn) outgoing(ev xmlsplit.Event) {
	switch ev.Kind {
	case xmlsplit.StreamStart:
		if !c.headerSeen {
			c.headerSeen = true
			for _, a := range ev.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "to":
					c.to = a.Value
				case a.Name.Space == "xml" && a.Name.Local == "lang":
					c.lang = a.Value
				}
			}
			if c.to == "" {
				c.to = c.cfg.Domain
			}
			return
		}
		c.queue = append(c.queue, outItem{kind: kindRestart})
		c.restarted = true
	case xmlsplit.Element:
		raw := boshwire.WithClientNS(ev)
		c.queue = append(c.queue, outItem{kind: kindData, raw: raw, stanza: boshwire.IsStanza(ev.Name)})
		c.queued += len(raw)
	case xmlsplit.StreamEnd:
		c.queue = append(c.queue, outItem{kind: kindTerminate})
	}
}

// run is the scheduler: it decides when to send which request. It ends when
// the session is done or the Conn is closed.
func (c *Conn) run() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		if c.state == stDone || c.closed {
			c.mu.Unlock()
			return
		}
		req, next := c.nextRequest(time.Now())
		ch := c.changed
		c.mu.Unlock()
		if req != nil {
			c.wg.Add(1)
			go c.send(req)
			continue
		}
		var timeout <-chan time.Time
		if !next.IsZero() {
			t := time.NewTimer(max(time.Until(next), time.Millisecond))
			timeout = t.C
			select {
			case <-ch:
			case <-timeout:
			case <-c.ctx.Done():
			}
			t.Stop()
			continue
		}
		select {
		case <-ch:
		case <-c.ctx.Done():
		}
	}
}

// nextRequest returns the request to send now, if any, or else the time to
// look again (zero: at the next state change). Call with c.mu held.
//
// Ordering: a connection manager must see requests in rid order, and
// ejabberd stalls when rid N+1 overtakes rid N (two HTTP connections
// racing: it buffers N+1 but holds N without looking at it again). So
// request N+1 is sent only once request N is known or safely assumed to
// have reached the server: N has been answered; or the server acknowledged
// it (XEP-0124 §9.1 ack, where the server reports acks); or N was written
// to its connection (httptrace WroteRequest) long enough ago: how long the
// server takes to react to a new request (the time from writing one to the
// answer of the request it held before, smoothed, plus four times its
// variation, as TCP times its retransmissions), at least 0.5 ms and at
// most 10 ms. At most 'hold'+1 requests are open (one more to
// terminate, §11), so under load a request carries many stanzas each way.
// A retry repeats an rid the server has probably seen; XEP-0124 makes a
// repeated rid safe (the server re-sends its answer).
func (c *Conn) nextRequest(now time.Time) (*request, time.Time) {
	if c.fatal != nil || c.remoteEnd {
		return nil, time.Time{}
	}
	switch c.state {
	case stNew:
		if !c.headerSeen {
			return nil, time.Time{}
		}
		c.state = stCreating
		return c.newRequest(kindCreate, nil, 0, 0, now), time.Time{}
	case stCreating, stTerminating, stDone:
		return nil, time.Time{}
	}
	if c.inflight > 0 && !c.lastDone {
		if !c.written {
			return nil, time.Time{}
		}
		if !c.serverAcks || c.ackedRID < c.lastRID {
			if at := c.writtenAt.Add(c.settle()); now.Before(at) {
				return nil, at
			}
		}
	}
	limit := min(c.requests, c.hold+1)
	if len(c.queue) > 0 {
		// XEP-0124 lets a client exceed 'requests' by one to terminate.
		if c.queueEndsWithTerminate() {
			limit++
		}
		if c.inflight >= limit {
			return nil, time.Time{}
		}
		return c.takeQueued(now), time.Time{}
	}
	if c.inflight > 0 {
		return nil, time.Time{}
	}
	if now.Before(c.pollAfter) {
		return nil, c.pollAfter
	}
	if now.Before(c.quietUntil) {
		return nil, c.quietUntil
	}
	return c.newRequest(kindData, nil, 0, 0, now), time.Time{}
}

// Bounds of the settling time (see nextRequest).
const (
	minSettle = 500 * time.Microsecond
	maxSettle = 10 * time.Millisecond
)

// sampleRTT feeds one reaction time of the server into the estimate, as
// TCP times its retransmissions (RFC 6298). A sample is the time from
// writing request N+1 to the answer of request N, held until then: a server
// answers the held request when the next arrives (XEP-0124 §8), so this is
// how long the server takes to take in a request. Call with c.mu held.
func (c *Conn) sampleRTT(d time.Duration) {
	if d <= 0 || d > maxSettle {
		return
	}
	if c.srtt == 0 {
		c.srtt, c.rttvar = d, d/2
		return
	}
	diff := c.srtt - d
	if diff < 0 {
		diff = -diff
	}
	c.rttvar = (3*c.rttvar + diff) / 4
	c.srtt = (7*c.srtt + d) / 8
}

// settle is how long after a request was written the next may follow when
// nothing confirmed the first: the smoothed reaction time plus four times
// its variation, within [minSettle, maxSettle] (maxSettle while nothing is
// known). Call with c.mu held.
func (c *Conn) settle() time.Duration {
	if c.srtt == 0 {
		return maxSettle
	}
	return min(max(c.srtt+4*c.rttvar, minSettle), maxSettle)
}

func (c *Conn) queueEndsWithTerminate() bool {
	for _, it := range c.queue {
		if it.kind == kindRestart {
			return false
		}
		if it.kind == kindTerminate {
			return true
		}
	}
	return false
}

// takeQueued builds the next body from the head of the queue: a restart
// alone, else as many elements as fit (at least one), with the terminate
// that may follow them.
func (c *Conn) takeQueued(now time.Time) *request {
	if c.queue[0].kind == kindRestart {
		c.queue = c.queue[1:]
		return c.newRequest(kindRestart, nil, 0, 0, now)
	}
	var payload bytes.Buffer
	kind := kindData
	n, elements, stanzas := 0, 0, 0
	for n < len(c.queue) {
		it := c.queue[n]
		if it.kind == kindRestart {
			break
		}
		if it.kind == kindTerminate {
			kind = kindTerminate
			n++
			break
		}
		if elements > 0 && payload.Len()+len(it.raw) > maxPayload {
			break
		}
		payload.Write(it.raw)
		c.queued -= len(it.raw)
		elements++
		if it.stanza {
			stanzas++
		}
		n++
	}
	c.queue = c.queue[n:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	return c.newRequest(kind, payload.Bytes(), elements, stanzas, now)
}

// newRequest assigns the next rid and wraps payload in its <body/>. Call
// with c.mu held.
func (c *Conn) newRequest(kind int, payload []byte, elements, stanzas int, now time.Time) *request {
	rid := c.nextRID
	c.nextRID++
	var b bytes.Buffer
	b.WriteString("<body rid='")
	b.WriteString(strconv.FormatUint(rid, 10))
	b.WriteString("' xmlns='" + boshwire.NSHTTPBind + "'")
	switch kind {
	case kindCreate:
		fmt.Fprintf(&b, " to='%s' wait='%d' hold='%d' ver='1.6' ack='1' content='text/xml; charset=utf-8'"+
			" xmpp:version='1.0' xmlns:xmpp='%s'", boshwire.AttrEscape(c.to), c.cfg.Wait, c.cfg.Hold, boshwire.NSXBOSH)
		if c.lang != "" {
			fmt.Fprintf(&b, " xml:lang='%s'", boshwire.AttrEscape(c.lang))
		}
	case kindRestart:
		fmt.Fprintf(&b, " sid='%s' to='%s' xmpp:restart='true' xmlns:xmpp='%s'", boshwire.AttrEscape(c.sid), boshwire.AttrEscape(c.to), boshwire.NSXBOSH)
		if c.lang != "" {
			fmt.Fprintf(&b, " xml:lang='%s'", boshwire.AttrEscape(c.lang))
		}
	case kindTerminate:
		fmt.Fprintf(&b, " sid='%s' type='terminate'", boshwire.AttrEscape(c.sid))
	default:
		fmt.Fprintf(&b, " sid='%s'", boshwire.AttrEscape(c.sid))
	}
	b.WriteString(c.keyAttrs(kind == kindCreate))
	if kind != kindCreate && c.answered+1 < rid {
		// §9.2: while earlier answers are missing, say which arrived.
		fmt.Fprintf(&b, " ack='%d'", c.answered)
	}
	if len(payload) == 0 {
		b.WriteString("/>")
	} else {
		b.WriteString(">")
		b.Write(payload)
		b.WriteString("</body>")
	}
	if kind == kindTerminate {
		c.state = stTerminating
	}
	c.kinds[rid] = kind
	c.inflight++
	c.lastRID = rid
	c.written = false
	c.lastDone = false
	return &request{rid: rid, kind: kind, payload: b.Bytes(), empty: elements == 0 && kind == kindData,
		elements: elements, stanzas: stanzas, sentAt: now}
}

// send performs one request, retrying it with the same rid on failure.
func (c *Conn) send(r *request) {
	defer c.wg.Done()
	delay := c.cfg.RetryDelay
	for attempt := 0; ; attempt++ {
		b, err := c.post(r, attempt == 0)
		if err == nil {
			c.onResponse(r, b)
			return
		}
		if c.ctx.Err() != nil {
			return
		}
		var perm permanentError
		if errors.As(err, &perm) || attempt >= c.cfg.MaxRetries {
			c.fail(r, err)
			return
		}
		c.nRetry.Add(1)
		c.log.Warn("bosh request failed, retrying with the same rid", "rid", r.rid, "attempt", attempt+1, "err", err)
		if attempt == 0 && brokenConn(err) {
			// A kept-alive connection that the server (or a proxy) closed
			// under the request: try again at once on a fresh one, which
			// also tells a restarted server apart quickly.
			continue
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
		delay *= 2
	}
}

// brokenConn reports whether err means that an established HTTP connection
// ended before its response (as opposed to a refused dial or an HTTP error).
func brokenConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// permanentError marks a failure that a retry cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// post sends one HTTP request and parses the answer. HTTP errors with a
// terminal binding condition come back as a terminate body.
func (c *Conn) post(r *request, first bool) (*boshwire.Body, error) {
	ctx, cancel := context.WithTimeout(c.ctx, time.Duration(c.cfg.Wait)*time.Second+20*time.Second)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				c.markWritten(r)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(r.payload))
	if err != nil {
		return nil, permanentError{fmt.Errorf("%w: %w", ErrConfig, err)}
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	c.nReq.Add(1)
	if first {
		if r.empty {
			c.nEmpty.Add(1)
		}
		c.nElSent.Add(int64(r.elements))
		c.nStSent.Add(int64(r.stanzas))
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResponse {
		return nil, permanentError{fmt.Errorf("%w: response larger than %d bytes", ErrProtocol, maxResponse)}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		b, err := boshwire.ParseBody(data)
		if err != nil {
			return nil, permanentError{fmt.Errorf("%w: %w", ErrProtocol, err)}
		}
		if b.Get("type") == "error" {
			// A recoverable binding error (XEP-0124 legacy): send it again.
			return nil, fmt.Errorf("%w: recoverable binding error", ErrProtocol)
		}
		return b, nil
	case resp.StatusCode >= 500:
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	}
	b, err := boshwire.ParseBody(data)
	if err != nil || b.Get("type") != "terminate" {
		b = &boshwire.Body{Attr: map[string]string{"type": "terminate"}}
	}
	if b.Get("condition") == "" {
		b.Attr["condition"] = statusCondition(resp.StatusCode)
	}
	return b, nil
}

// markWritten records that request r has been written to its connection.
func (c *Conn) markWritten(r *request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.writtenAt.IsZero() {
		r.writtenAt = time.Now()
		if c.writes == nil {
			c.writes = map[uint64]time.Time{}
		}
		c.writes[r.rid] = r.writtenAt
	}
	if r.rid == c.lastRID && !c.written {
		c.written = true
		c.writtenAt = time.Now()
		c.broadcast()
	}
}

// fail ends the session after request r could not be completed.
func (c *Conn) fail(r *request, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fatal == nil && !c.eof && !c.closed {
		c.fatal = fmt.Errorf("%w: rid %d: %w", ErrHTTP, r.rid, err)
		c.log.Warn("bosh session failed", "sid", c.sid, "err", err)
	}
	c.inflight--
	c.state = stDone
	c.cancel()
	c.broadcast()
}

// onResponse stores the answer to r and delivers every answer that is next
// in rid order.
func (c *Conn) onResponse(r *request, b *boshwire.Body) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight--
	now := time.Now()
	if r.rid == c.lastRID {
		if !c.written {
			c.written = true
			c.writtenAt = now
		}
		c.lastDone = true
	}
	if t, ok := c.writes[r.rid+1]; ok && !r.writtenAt.IsZero() && r.writtenAt.Before(t) {
		c.sampleRTT(now.Sub(t))
	}
	delete(c.writes, r.rid)
	if c.serverAcks || r.kind == kindCreate {
		// §9.1: ack names the highest rid the server has with every lower
		// one; without it (after the creation) it is this request's rid.
		a := r.rid
		if v, err := boshwire.ParseRID(b.Get("ack")); err == nil {
			a = v
			if r.kind == kindCreate {
				c.serverAcks = true
			}
		}
		if c.serverAcks && a > c.ackedRID {
			c.ackedRID = a
		}
	}
	if r.empty {
		// An empty request answered empty and early, with no later request
		// that could have pushed it out, means the server is not holding
		// requests (a polling session): the next empty one waits for
		// 'polling' (XEP-0124 overactivity).
		if len(b.Children) == 0 && r.rid == c.lastRID && time.Since(r.sentAt) < c.polling {
			c.pollAfter = r.sentAt.Add(c.polling)
		} else {
			c.pollAfter = time.Time{}
		}
	}
	if len(b.Children) > 0 {
		// What just arrived is usually answered at once (an iq result, a
		// SASL response, a reply): give the answer a moment to become the
		// next request instead of sending an empty one that the answer
		// would then have to follow (see nextRequest).
		c.quietUntil = time.Now().Add(replyWindow)
	}
	c.responses[r.rid] = b
	for {
		nb, ok := c.responses[c.deliverRID]
		if !ok {
			break
		}
		delete(c.responses, c.deliverRID)
		kind := c.kinds[c.deliverRID]
		delete(c.kinds, c.deliverRID)
		c.deliverRID++
		c.answered = c.deliverRID - 1
		c.apply(kind, nb)
		if c.eof || c.fatal != nil {
			break
		}
	}
	c.broadcast()
}

// apply turns one response into synthetic stream bytes. Call with c.mu held.
func (c *Conn) apply(kind int, b *boshwire.Body) {
	if c.eof || c.fatal != nil {
		return
	}
	if kind == kindCreate {
		if b.Get("type") != "terminate" {
			c.sid = b.Get("sid")
			if c.sid == "" {
				c.fatal = fmt.Errorf("%w: session creation response without sid", ErrProtocol)
				c.state = stDone
				c.cancel()
				return
			}
			c.authid = b.Get("authid")
			c.hold = b.IntAttr("hold", c.cfg.Hold)
			c.requests = b.IntAttr("requests", c.hold+1)
			if c.requests < 1 {
				c.requests = 1
			}
			c.wait = b.IntAttr("wait", c.cfg.Wait)
			c.polling = time.Duration(b.IntAttr("polling", 0)) * time.Second
			c.inactivity = time.Duration(b.IntAttr("inactivity", 0)) * time.Second
			if c.inactivity > 0 && c.polling > c.inactivity/2 {
				c.polling = c.inactivity / 2
			}
			if c.hold == 0 && c.polling == 0 {
				c.polling = time.Second
			}
			c.state = stOpen
			c.log.Debug("bosh session created", "sid", c.sid, "requests", c.requests, "hold", c.hold, "wait", c.wait)
		}
	}
	terminate := b.Get("type") == "terminate"
	switch {
	case kind == kindCreate && !terminate:
		c.streamHeader()
	case c.restarted && (kind == kindRestart || len(b.Children) > 0):
		// The new stream starts with the first element that comes after the
		// restart was written, whichever response carries it: Prosody sends
		// the new features in the answer to an older, held request.
		c.restarted = false
		c.streamHeader()
	}
	cond := b.Get("condition")
	hasStreamError := false
	for _, ch := range b.Children {
		raw := ch.Raw
		if ch.Name.Local == "features" {
			raw = stripStartTLS(raw)
		}
		if ch.Name.Local == "error" && ch.Name.Space != "" {
			hasStreamError = true
		}
		c.rbuf = append(c.rbuf, raw...)
		c.nElRecv.Add(1)
		if boshwire.IsStanza(ch.Name) {
			c.nStRecv.Add(1)
		}
	}
	switch {
	case kind == kindTerminate || (terminate && c.state == stTerminating):
		// Our own terminate: the stream ends cleanly. ejabberd answers the
		// request held before it with a terminate of its own
		// (condition='other-request'), which ends the same session.
		c.rbuf = append(c.rbuf, "</stream:stream>"...)
		c.eof = true
		c.state = stDone
	case terminate:
		c.remoteEnd = true
		c.condition = cond
		if cond != "" && !hasStreamError {
			c.rbuf = append(c.rbuf, terminateError(cond)...)
		}
		c.rbuf = append(c.rbuf, "</stream:stream>"...)
		c.eof = true
		c.state = stDone
		c.log.Debug("bosh session terminated by the server", "sid", c.sid, "condition", cond)
	}
	if c.state == stDone {
		c.cancel()
	}
}

// streamHeader appends the synthetic header of a new stream to the read
// buffer. Call with c.mu held.
func (c *Conn) streamHeader() {
	id := c.authid
	if id == "" {
		id = c.sid
	}
	c.rbuf = append(c.rbuf, "<stream:stream xmlns='jabber:client' xmlns:stream='"+boshwire.NSStream+
		"' version='1.0' id='"+boshwire.AttrEscape(id)+"' from='"+boshwire.AttrEscape(c.cfg.Domain)+"'>"...)
}

// Close ends the session: it sends a terminate request (waiting at most
// Config.CloseTimeout for its answer) unless the stream already ended, then
// aborts every request, unblocks every pending Read and Write and closes
// the HTTP client's idle connections.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed || c.closing {
		c.mu.Unlock()
		return nil
	}
	if c.state == stOpen && c.fatal == nil && !c.remoteEnd && !c.queueEndsWithTerminate() {
		c.queue = append(c.queue, outItem{kind: kindTerminate})
	}
	c.closing = true
	c.broadcast()
	deadline := time.Now().Add(c.cfg.CloseTimeout)
	for (c.state == stOpen || c.state == stTerminating) && time.Now().Before(deadline) {
		_ = c.waitLocked(deadline)
	}
	c.closed = true
	c.state = stDone
	c.broadcast()
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	// The session's kept-alive connections would otherwise outlive it, each
	// with its reading and writing goroutines.
	c.client.CloseIdleConnections()
	return nil
}

// addr is the address of either end of a BOSH session.
type addr string

func (a addr) Network() string { return "bosh" }
func (a addr) String() string  { return string(a) }

// LocalAddr returns a placeholder address: the HTTP connections come and go.
func (c *Conn) LocalAddr() net.Addr { return addr("bosh-client") }

// RemoteAddr returns the connection manager's URL.
func (c *Conn) RemoteAddr() net.Addr { return addr(c.url) }

// SetDeadline sets the read and write deadlines; a zero value means none.
// Changing a deadline unblocks pending calls so they observe it.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl, c.wdl = t, t
	c.broadcast()
	return nil
}

// SetReadDeadline sets the read deadline; a zero value means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rdl = t
	c.broadcast()
	return nil
}

// SetWriteDeadline sets the write deadline; a zero value means none.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wdl = t
	c.broadcast()
	return nil
}

// keyCount is the length of a key sequence; the client switches to a new
// one when it is used up (XEP-0124 §15.5).
const keyCount = 1024

// keySequence returns K(1)..K(n) of XEP-0124 §15.3 from a random seed:
// K(1) = hex(SHA-1(seed)), K(i) = hex(SHA-1(K(i-1))).
func keySequence(n int) []string {
	var seed [20]byte
	_, _ = rand.Read(seed[:])
	out := make([]string, n)
	k := hex.EncodeToString(seed[:])
	for i := range out {
		sum := sha1.Sum([]byte(k))
		k = hex.EncodeToString(sum[:])
		out[i] = k
	}
	return out
}

// keyAttrs are the key attributes of the next request: newkey K(n) on the
// creation, then key K(n-1), K(n-2)... and with K(1) the newkey of a fresh
// sequence (§15.4, §15.5). Call with c.mu held.
func (c *Conn) keyAttrs(create bool) string {
	if len(c.keys) == 0 {
		return ""
	}
	pop := func() string {
		k := c.keys[len(c.keys)-1]
		c.keys = c.keys[:len(c.keys)-1]
		return k
	}
	if create {
		return " newkey='" + pop() + "'"
	}
	a := " key='" + pop() + "'"
	if len(c.keys) == 0 {
		c.keys = keySequence(keyCount)
		a += " newkey='" + pop() + "'"
	}
	return a
}
