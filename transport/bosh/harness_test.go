package bosh_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/internal/miniserver/boshcm"
	"crier/transport/bosh"
)

const domain = "example.test"

// hub is a tiny XMPP server on mellium's receiving side: PLAIN login,
// bind, and message routing between the connected accounts.
type hub struct {
	t        testing.TB
	accounts map[string]string

	mu    sync.Mutex
	conns map[string]*xmpp.Session // bound full JID -> session
}

func newHub(t testing.TB) *hub {
	return &hub{t: t, accounts: map[string]string{"alice": "apass", "bob": "bpass"}, conns: map[string]*xmpp.Session{}}
}

func (h *hub) serve(c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var bound jid.JID
	var user string
	s, err := xmpp.ReceiveSession(ctx, c, xmpp.Secure, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{
			xmpp.SASLServer(func(n *sasl.Negotiator) bool {
				u, pass, _ := n.Credentials()
				want, ok := h.accounts[string(u)]
				user = string(u)
				return ok && want == string(pass)
			}, sasl.Plain),
			xmpp.BindCustom(func(_ jid.JID, res string) (jid.JID, error) {
				if res == "" {
					res = "r1"
				}
				var err error
				bound, err = jid.New(user, domain, res)
				return bound, err
			}),
		}}
	}))
	cancel()
	if err != nil {
		return
	}
	key := bound.String()
	h.mu.Lock()
	h.conns[key] = s
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.conns, key)
		h.mu.Unlock()
	}()
	_ = s.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		switch start.Name.Local {
		case "message":
			var m struct {
				stanza.Message
				Body string `xml:"body"`
			}
			if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err != nil {
				h.t.Logf("hub: bad message: %v", err)
				return nil
			}
			m.From = bound
			h.route(m.To, m.Message, m.Body)
		case "iq":
			iq, err := stanza.NewIQ(*start)
			if err != nil || (iq.Type != stanza.GetIQ && iq.Type != stanza.SetIQ) {
				return nil
			}
			_ = xmlstream.Skip(t)
			_, err = xmlstream.Copy(t, iq.Result(nil))
			return err
		}
		return nil
	}))
}

// route delivers a chat message to every session of the addressee.
// A session registers only after its bind result went out, so a message
// may briefly find its addressee missing: route waits up to 2s for it.
func (h *hub) route(to jid.JID, m stanza.Message, body string) {
	var targets []*xmpp.Session
	for range 100 {
		h.mu.Lock()
		for k, s := range h.conns {
			if k == to.String() || strings.HasPrefix(k, to.Bare().String()+"/") {
				targets = append(targets, s)
			}
		}
		h.mu.Unlock()
		if len(targets) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range targets {
		_ = s.Send(context.Background(), m.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})))
	}
}

// startCM runs a connection manager on a loopback httptest server. wrap,
// when not nil, sits between the HTTP server and the handler.
func startCM(t testing.TB, h *hub, cfg boshcm.Config, wrap func(http.Handler) http.Handler) (*httptest.Server, *boshcm.Handler) {
	t.Helper()
	cfg.Domain = domain
	cfg.Serve = h.serve
	cm := boshcm.New(cfg)
	var hd http.Handler = cm
	if wrap != nil {
		hd = wrap(cm)
	}
	srv := httptest.NewUnstartedServer(hd)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() {
		_ = cm.Close()
		srv.Close()
	})
	return srv, cm
}

// client is a logged-in mellium session over a BOSH Conn.
type client struct {
	s    *xmpp.Session
	conn *bosh.Conn
	msgs chan string
	done chan error
}

func login(t testing.TB, url, user, pass string, cfg bosh.Config) *client {
	t.Helper()
	cfg.URL, cfg.Domain = url, domain
	if cfg.Wait == 0 {
		cfg.Wait = 5
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := bosh.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	me := jid.MustParse(user + "@" + domain + "/bot")
	s, err := xmpp.NewSession(ctx, jid.MustParse(domain), me, nc, xmpp.Secure, xmpp.NewNegotiator(func(*xmpp.Session, *xmpp.StreamConfig) xmpp.StreamConfig {
		return xmpp.StreamConfig{Features: []xmpp.StreamFeature{xmpp.SASL("", pass, sasl.ScramSha256, sasl.ScramSha1, sasl.Plain), xmpp.BindResource()}}
	}))
	if err != nil {
		_ = nc.Close()
		t.Fatalf("login %s: %v", user, err)
	}
	c := &client{s: s, conn: nc.(*bosh.Conn), msgs: make(chan string, 1000), done: make(chan error, 1)}
	go func() {
		c.done <- s.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
			if start.Name.Local != "message" {
				return nil
			}
			var m struct {
				Body string `xml:"body"`
			}
			if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), t)).Decode(&m); err == nil && m.Body != "" {
				c.msgs <- m.Body
			}
			return nil
		}))
	}()
	return c
}

func (c *client) send(t testing.TB, to, body string) {
	t.Helper()
	m := stanza.Message{To: jid.MustParse(to), Type: stanza.ChatMessage}
	// No per-call cancel: mellium turns a context's end into a write
	// deadline in the past for a moment, which can fail the next Send.
	if err := c.s.Send(context.Background(), m.Wrap(xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}}))); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// presence sends initial presence.
func (c *client) presence(t testing.TB) {
	t.Helper()
	if err := c.s.Send(context.Background(), stanza.Presence{}.Wrap(nil)); err != nil {
		t.Fatalf("presence: %v", err)
	}
}

func (c *client) expect(t testing.TB, want ...string) {
	t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for i, w := range want {
		select {
		case got := <-c.msgs:
			if got != w {
				t.Fatalf("message %d: got %q, want %q", i, got, w)
			}
		case <-timeout.C:
			t.Fatalf("message %d (%q) did not arrive", i, w)
		}
	}
}

// stop closes the session and its Conn and waits for Serve to return.
func (c *client) stop(t testing.TB) error {
	t.Helper()
	_ = c.s.Close()
	_ = c.conn.Close()
	select {
	case err := <-c.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after Close")
		return nil
	}
}

// checkGoroutines fails t if the number of goroutines does not come back to
// before (allowing a little slack for the runtime) within a few seconds.
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		http.DefaultClient.CloseIdleConnections()
		n := runtime.NumGoroutine()
		if n <= before+2 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errTimeout = errors.New("timeout")

// waitFor polls cond every 10ms for at most d.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", errTimeout, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}
