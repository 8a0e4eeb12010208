package zeroloss

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"crier/internal/xmpptest"
)

// Receiver is the XMPP user the relayed events go to. It reads its stream
// in a goroutine of its own, hands every message body to a callback, and
// can go offline before a server restart and log in again afterwards.
type Receiver struct {
	opts   xmpptest.Options
	onBody func(body string, at time.Time)

	mu      sync.Mutex
	client  *xmpptest.Client
	reading chan struct{} // closed when the current reader ends
	errs    []string      // error stanzas received, first few
	nErrs   int
	logins  int
}

// maxLoginTries bounds the log-in attempts of one Connect; a try waits
// loginPause after a failure.
const (
	maxLoginTries = 150
	loginPause    = 100 * time.Millisecond
)

// NewReceiver returns a receiver that logs in with opts and calls onBody,
// from one goroutine at a time and in the order of arrival, with the body
// of every message that has one and the time it was read.
func NewReceiver(opts xmpptest.Options, onBody func(body string, at time.Time)) *Receiver {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	return &Receiver{opts: opts, onBody: onBody}
}

// Connect logs in (retrying while the server is not back yet, for at most
// maxLoginTries attempts and while ctx lasts), sends initial presence, which
// makes the server deliver the messages it stored meanwhile, and starts
// reading. A previous session must be over (see Offline).
func (r *Receiver) Connect(ctx context.Context) error {
	var lastErr error
	for range maxLoginTries {
		c, err := xmpptest.Connect(ctx, r.opts)
		if err == nil {
			done := make(chan struct{})
			r.mu.Lock()
			r.client, r.reading = c, done
			r.logins++
			r.mu.Unlock()
			go r.read(ctx, c, done)
			return nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
		time.Sleep(loginPause)
	}
	return fmt.Errorf("receiver %s cannot log in at %s: %w", r.opts.JID, r.opts.Addr, lastErr)
}

// read hands each stanza of c to the callback until c's stream ends and
// every stanza it buffered was handled, or ctx ends.
func (r *Receiver) read(ctx context.Context, c *xmpptest.Client, done chan struct{}) {
	defer close(done)
	all := func(xmpptest.Stanza) bool { return true }
	for ctx.Err() == nil {
		s, err := c.Wait(ctx, 0, time.Second, all)
		switch {
		case errors.Is(err, xmpptest.ErrTimeout):
			continue
		case err != nil:
			return
		}
		at := time.Now()
		if s.Name != "message" {
			continue
		}
		if s.Type == "error" {
			r.mu.Lock()
			r.nErrs++
			if len(r.errs) < 5 {
				r.errs = append(r.errs, s.Raw)
			}
			r.mu.Unlock()
			continue
		}
		if s.Body != "" {
			r.onBody(s.Body, at)
		}
	}
}

// Offline makes the receiver unavailable and waits until the server has
// taken that into account: from then on the server stores chat messages
// for it instead of routing them to this session. Everything routed to the
// session before arrives ahead of the answer to the ping that follows the
// presence, and is handed to the callback before Offline returns. The
// connection stays open; a server restart ends it, or Close does.
func (r *Receiver) Offline(ctx context.Context) error {
	r.mu.Lock()
	c, reading := r.client, r.reading
	r.mu.Unlock()
	if c == nil {
		return errors.New("receiver not connected")
	}
	if err := c.Send(ctx, "<presence type='unavailable'/>"); err != nil {
		return fmt.Errorf("unavailable presence: %w", err)
	}
	ictx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := c.IQ(ictx, c.JID().Domain().String(), "get", "<ping xmlns='urn:xmpp:ping'/>"); err != nil {
		return fmt.Errorf("ping after the unavailable presence: %w", err)
	}
	// The reader may still hold stanzas read before the ping's answer:
	// close the stream and let the reader finish them.
	_ = c.Close()
	select {
	case <-reading:
		return nil
	case <-time.After(15 * time.Second):
		return errors.New("receiver's reader did not finish within 15s")
	}
}

// Close ends the current session, if any, and waits for its reader.
func (r *Receiver) Close() {
	r.mu.Lock()
	c, reading := r.client, r.reading
	r.client = nil
	r.mu.Unlock()
	if c == nil {
		return
	}
	_ = c.Close()
	select {
	case <-reading:
	case <-time.After(15 * time.Second):
	}
}

// Errors returns how many error messages arrived, and the first few.
func (r *Receiver) Errors() (int, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nErrs, append([]string(nil), r.errs...)
}

// Logins returns how many sessions the receiver opened.
func (r *Receiver) Logins() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.logins
}
