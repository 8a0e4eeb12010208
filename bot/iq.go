package bot

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"sync"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/transport"
)

// The bot sends its own iq requests (pings, self-pings, moderation) and
// matches the answers itself instead of using mellium's SendIQ. mellium
// ties a context to each write: when that context ends just as the write
// finishes, a helper goroutine can still move the connection's write
// deadline into the past and break the next write on the stream (a TLS
// record cut in half). So every write here uses a context that never ends,
// and time limits are kept by the caller waiting for the answer and by the
// write watchdog, which closes a connection whose write is stuck.

// iqAnswer is the answer to one of the bot's iq requests.
type iqAnswer struct {
	Type  string       `xml:"type,attr"`
	Error *stanzaError `xml:"error"`
}

// Err returns the answer's error as a stanza.Error (nil for a result).
func (a iqAnswer) Err() error {
	if a.Type != "error" {
		return nil
	}
	cond := "undefined-condition"
	if a.Error != nil && a.Error.Condition != "" {
		cond = a.Error.Condition
	}
	return stanza.Error{Condition: stanza.Condition(cond)}
}

// iqWaiters holds the bot's outstanding iq requests by id.
type iqWaiters struct {
	mu sync.Mutex
	m  map[string]chan iqAnswer
}

func (w *iqWaiters) add(id string) chan iqAnswer {
	ch := make(chan iqAnswer, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[string]chan iqAnswer)
	}
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *iqWaiters) remove(id string) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// deliver hands an answer to its waiter; it reports false for an id the
// bot is not waiting for.
func (w *iqWaiters) deliver(id string, a iqAnswer) bool {
	w.mu.Lock()
	ch, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		ch <- a
	}
	return ok
}

// errNoAnswer is returned when an iq request is not answered in time.
var errNoAnswer = errors.New("bot: no answer to the request")

// sendIQ writes an iq request and waits for its answer until ctx ends. A
// stanza error in the answer is returned as a stanza.Error.
func (b *Bot) sendIQ(ctx context.Context, conn *transport.Conn, to jid.JID, typ stanza.IQType, payload xml.TokenReader) error {
	id := "iq-" + b.nextID()
	ch := b.iqs.add(id)
	defer b.iqs.remove(id)
	if err := b.write(conn, stanza.IQ{ID: id, To: to, Type: typ}.Wrap(payload)); err != nil {
		return err
	}
	select {
	case a := <-ch:
		return a.Err()
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
	}
}

// ping sends an XMPP ping (XEP-0199) and waits for the answer.
func (b *Bot) ping(ctx context.Context, conn *transport.Conn, to jid.JID) error {
	return b.sendIQ(ctx, conn, to, stanza.GetIQ, xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Space: "urn:xmpp:ping", Local: "ping"}}))
}

// writeTimeout bounds one write; a write stuck longer means the server
// stopped reading, and the connection is closed.
const writeTimeout = 30 * time.Second

// write sends r on the session (see sessionWriter), guarded by a watchdog
// that closes the connection if the write hangs.
func (b *Bot) write(conn *transport.Conn, r xml.TokenReader) error {
	t := time.AfterFunc(writeTimeout, func() {
		b.log.Warn("a write to the server hung; dropping the connection", "after", writeTimeout)
		if c := conn.Session.Conn(); c != nil {
			_ = c.Close()
		}
	})
	defer t.Stop()
	return sessionWriter{conn.Session, b.fromFilter()}.Send(context.Background(), r)
}

// answered takes an iq result or error addressed to one of the bot's own
// requests; it reports false for anything else.
func (b *Bot) answered(d *xml.Decoder, start *xml.StartElement) (bool, error) {
	var id, typ string
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "id":
			id = a.Value
		case "type":
			typ = a.Value
		}
	}
	if typ != "result" && typ != "error" {
		return false, nil
	}
	b.iqs.mu.Lock()
	_, ok := b.iqs.m[id]
	b.iqs.mu.Unlock()
	if !ok {
		return false, nil
	}
	var a iqAnswer
	if err := d.DecodeElement(&a, start); err != nil {
		return true, err
	}
	b.iqs.deliver(id, a)
	return true, nil
}

// connSender is the outbox's sender for one connection: it writes through
// the session and tells the stream management count after a write, which
// lets a resumed session settle what the server confirmed (outbox.go).
type connSender struct {
	sessionWriter
	c *transport.Conn
}

// SMSent returns the number of stanzas written under stream management.
func (s connSender) SMSent() (uint32, bool) { return s.c.SMSent() }

// sessionWriter writes whole stanzas through the session's token writer,
// which holds the session's write lock for the stanza. Unlike Session.Send
// it starts no goroutine per stanza and ties no context to the write, so
// the write deadline is never moved under a later write (see above); the
// callers' watchdogs bound a hung write instead.
//
// from, when set (a component, component.go), puts the from on each stanza.
type sessionWriter struct {
	s    *xmpp.Session
	from func(*xml.StartElement)
}

// Send writes the element r and flushes it.
func (w sessionWriter) Send(_ context.Context, r xml.TokenReader) error {
	if w.from != nil {
		r = &stanzaStarts{r: r, f: w.from}
	}
	tw := w.s.TokenWriter()
	_, err := xmlstream.Copy(tw, r)
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	return err
}
