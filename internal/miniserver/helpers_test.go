package miniserver

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
)

const waitFor = 5 * time.Second

var testAccounts = map[string]string{
	"alice":           "alicepw",
	"bob@localhost":   "bobpw",
	"carol":           "carolpw",
	"dave@localhost":  "davepw",
	"admin@localhost": "adminpw",
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer starts a server on loopback with the test accounts.
func startServer(t testing.TB, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		TLSAddr:  "127.0.0.1:0",
		Accounts: testAccounts,
		Logger:   quietLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// tclient is a scripted test user.
type tclient struct {
	t    testing.TB
	name string
	sess *xmpp.Session
	conn net.Conn
	jid  jid.JID
	in   chan *el
	done chan struct{}
	err  error // read error, valid after done
	seq  int
}

// bindFeature binds the requested resource (mellium's client bind sends an
// empty one).
func bindFeature(res string, got *jid.JID) xmpp.StreamFeature {
	return xmpp.StreamFeature{
		Name:       xml.Name{Space: "urn:ietf:params:xml:ns:xmpp-bind", Local: "bind"},
		Necessary:  xmpp.Authn,
		Prohibited: xmpp.Ready,
		Parse: func(_ context.Context, d *xml.Decoder, _ *xml.StartElement) (bool, any, error) {
			return true, nil, d.Skip()
		},
		Negotiate: func(_ context.Context, sess *xmpp.Session, _ any) (xmpp.SessionState, io.ReadWriter, error) {
			req := elem(nsClient, "iq", "type", "set", "id", "bind1").add(
				elem("urn:ietf:params:xml:ns:xmpp-bind", "bind").add(
					elem("urn:ietf:params:xml:ns:xmpp-bind", "resource").text(res)))
			if res == "" {
				req = elem(nsClient, "iq", "type", "set", "id", "bind1").add(
					elem("urn:ietf:params:xml:ns:xmpp-bind", "bind"))
			}
			if _, err := sess.Conn().Write(req.bytes()); err != nil {
				return 0, nil, err
			}
			r := sess.TokenReader()
			defer r.Close()
			e, err := readElement(r, 1<<20)
			if err != nil {
				return 0, nil, err
			}
			if e.attr("type") != "result" {
				return 0, nil, fmt.Errorf("bind failed: %s", e)
			}
			j, err := jid.Parse(e.child("", "bind").childText("", "jid"))
			if err != nil {
				return 0, nil, err
			}
			*got = j
			return xmpp.Ready, nil, nil
		},
	}
}

type dialOpts struct {
	mech   sasl.Mechanism
	direct bool
	pass   string
}

// login connects user (localpart) with resource; it fails the test on error.
func login(t testing.TB, s *Server, user, res string) *tclient {
	t.Helper()
	c, err := tryLogin(t, s, user, res, dialOpts{})
	if err != nil {
		t.Fatalf("login %s/%s: %v", user, res, err)
	}
	return c
}

func tryLogin(t testing.TB, s *Server, user, res string, o dialOpts) (*tclient, error) {
	t.Helper()
	if o.mech.Name == "" {
		o.mech = sasl.ScramSha256
	}
	if o.pass == "" {
		o.pass = testAccounts[user]
		if o.pass == "" {
			o.pass = testAccounts[user+"@localhost"]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	var d net.Dialer
	var conn net.Conn
	var err error
	var features []xmpp.StreamFeature
	if o.direct {
		conn, err = (&tls.Dialer{Config: &tls.Config{
			RootCAs: s.CertPool(), ServerName: "localhost", NextProtos: []string{"xmpp-client"},
		}}).DialContext(ctx, "tcp", s.TLSAddr())
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.Addr())
		features = append(features, xmpp.StartTLS(s.ClientTLSConfig("localhost")))
	}
	if err != nil {
		return nil, err
	}
	var bound jid.JID
	features = append(features, xmpp.SASL("", o.pass, o.mech), bindFeature(res, &bound))
	origin := jid.MustParse(user + "@localhost")
	sess, err := xmpp.NewClientSession(ctx, origin, conn, features...)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	c := newTClient(t, sess, sess.Conn(), bound, user+"/"+res)
	return c, nil
}

func newTClient(t testing.TB, sess *xmpp.Session, conn net.Conn, bound jid.JID, name string) *tclient {
	c := &tclient{t: t, name: name, sess: sess, conn: conn, jid: bound, in: make(chan *el, 1000), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		r := sess.TokenReader()
		defer r.Close()
		for {
			e, err := readElement(r, 16<<20)
			if err != nil {
				c.err = err
				return
			}
			select {
			case c.in <- e:
			default:
				c.err = errors.New("test client queue overflow")
				return
			}
		}
	}()
	t.Cleanup(func() { _ = conn.Close() })
	return c
}

// send writes raw XML.
func (c *tclient) send(format string, args ...any) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := io.WriteString(c.conn, fmt.Sprintf(format, args...)); err != nil {
		c.t.Fatalf("%s: send: %v", c.name, err)
	}
}

// id returns a fresh stanza id.
func (c *tclient) id() string {
	c.seq++
	return fmt.Sprintf("%s-%d", strings.ReplaceAll(c.name, "/", "-"), c.seq)
}

// expect waits for an element matching pred, skipping others.
func (c *tclient) expect(desc string, pred func(*el) bool) *el {
	c.t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	for {
		select {
		case e := <-c.in:
			if pred(e) {
				return e
			}
		case <-c.done:
			// Drain what arrived before the end.
			for {
				select {
				case e := <-c.in:
					if pred(e) {
						return e
					}
				default:
					c.t.Fatalf("%s: stream ended (%v) while waiting for %s", c.name, c.err, desc)
					return nil
				}
			}
		case <-timer.C:
			c.t.Fatalf("%s: timed out waiting for %s", c.name, desc)
			return nil
		}
	}
}

// expectNone checks that nothing matching pred arrives within d.
func (c *tclient) expectNone(desc string, d time.Duration, pred func(*el) bool) {
	c.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-c.in:
			if pred(e) {
				c.t.Fatalf("%s: unexpected %s: %s", c.name, desc, e)
			}
		case <-timer.C:
			return
		}
	}
}

// expectClosed waits until the stream ends.
func (c *tclient) expectClosed(desc string) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(waitFor):
		c.t.Fatalf("%s: stream not closed: %s", c.name, desc)
	}
}

// iq sends an iq and waits for its answer.
func (c *tclient) iq(typ, to, payload string) *el {
	c.t.Helper()
	id := c.id()
	toAttr := ""
	if to != "" {
		toAttr = fmt.Sprintf(" to='%s'", to)
	}
	c.send("<iq type='%s' id='%s'%s>%s</iq>", typ, id, toAttr, payload)
	return c.expect("iq answer "+id, func(e *el) bool {
		return e.Name.Local == "iq" && e.attr("id") == id && (e.attr("type") == "result" || e.attr("type") == "error")
	})
}

// presence announces availability with a priority.
func (c *tclient) available(prio int) {
	c.t.Helper()
	c.send("<presence><priority>%d</priority></presence>", prio)
	c.expect("own presence", func(e *el) bool {
		return e.Name.Local == "presence" && e.attr("from") == c.jid.String() && e.attr("type") == ""
	})
}

// join enters a room and waits for the self-presence (status 110).
func (c *tclient) join(roomNick, extra string) *el {
	c.t.Helper()
	c.send("<presence to='%s'><x xmlns='%s'>%s</x></presence>", roomNick, nsMUC, extra)
	return c.expect("self presence in "+roomNick, func(e *el) bool {
		return e.Name.Local == "presence" && e.attr("from") == roomNick && (hasStatus(e, 110) || e.attr("type") == "error")
	})
}

func hasStatus(e *el, code int) bool {
	x := e.child(nsMUCUser, "x")
	if x == nil {
		return false
	}
	for _, st := range x.children(nsMUCUser, "status") {
		if st.attr("code") == fmt.Sprint(code) {
			return true
		}
	}
	return false
}

func errCond(e *el) string {
	if e == nil || e.attr("type") != "error" {
		return ""
	}
	er := e.child(nsClient, "error")
	if er == nil {
		return "?"
	}
	if c := er.firstChild(); c != nil {
		return c.Name.Local
	}
	return "?"
}

func isMsg(from, body string) func(*el) bool {
	return func(e *el) bool {
		return e.Name.Local == "message" && e.attr("from") == from && e.childText(nsClient, "body") == body
	}
}

func isPres(from, typ string) func(*el) bool {
	return func(e *el) bool {
		return e.Name.Local == "presence" && e.attr("from") == from && e.attr("type") == typ
	}
}

// eventually polls cond until it holds or the wait ends.
func eventually(t testing.TB, desc string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", desc)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
