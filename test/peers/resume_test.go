//go:build peers

package peers_test

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"crier/internal/crierproc"
	"crier/internal/peers"
	"crier/internal/xmpptest"
	"crier/transport"
)

// cutProxy forwards loopback TCP connections to a server and can cut them
// all at once, as a network failure would: the server sees the socket
// close without the stream being ended.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() { _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// cut closes every proxied connection, both sides.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// bodies collects the bodies of the messages a session receives.
type bodies struct {
	mu  sync.Mutex
	got []string
}

func (b *bodies) HandleXMPP(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	if start.Name.Local != "message" {
		return nil
	}
	var m struct {
		Body string `xml:"body"`
	}
	d := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r))
	if err := d.Decode(&m); err != nil {
		return err
	}
	if m.Body != "" {
		b.mu.Lock()
		b.got = append(b.got, m.Body)
		b.mu.Unlock()
	}
	return nil
}

func (b *bodies) wait(t *testing.T, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b.mu.Lock()
		got := slices.Clone(b.got)
		b.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d messages: %q", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStreamResumption cuts a stream-managed session's TCP connection
// under each peer (Prosody's mod_smacks, ejabberd's mod_stream_mgmt) and
// resumes it: same full JID, what the peer sent in the gap delivered once,
// nothing received twice, and both counters going on from where they were.
func TestStreamResumption(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			me := p.Account(t, "user5")
			other := p.Account(t, "user4")
			rcv := xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: other.JID, Password: other.Password,
				Resource: fmt.Sprintf("resume-peer-%d", time.Now().UnixNano()), RootCAs: p.CertPool()})
			proxy := startCutProxy(t, p.C2S)
			o := transport.Options{
				JID:       jid.MustParse(me.JID),
				Password:  me.Password,
				Resource:  fmt.Sprintf("resume-%d", time.Now().UnixNano()),
				Address:   proxy.addr(),
				TLSConfig: &tls.Config{RootCAs: p.CertPool()},
				Timeout:   20 * time.Second,
			}
			c1, err := transport.Connect(context.Background(), o)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			in1 := &bodies{}
			served := make(chan error, 1)
			go func() { served <- c1.Session.Serve(in1) }()
			barrier := func(c *transport.Conn) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if err := c.Barrier(ctx); err != nil {
					t.Fatalf("Barrier: %v\n%s", err, p.LogTail(20))
				}
			}
			barrier(c1)
			if st := c1.SMStats(); !st.Resumable {
				t.Fatalf("%s did not allow resumption: %+v", name, st)
			}
			for i := range 3 {
				if err := rcv.SendMessage(c1.JID.String(), "chat", fmt.Sprintf("before-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			in1.wait(t, 3, 10*time.Second)
			send := func(c *transport.Conn, body string) {
				t.Helper()
				msg := stanza.Message{To: rcv.JID(), Type: stanza.ChatMessage}
				payload := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
				if err := c.Session.Send(context.Background(), msg.Wrap(payload)); err != nil {
					t.Fatal(err)
				}
			}
			send(c1, "out-1")
			send(c1, "out-2")
			barrier(c1)

			proxy.cut()
			select {
			case err := <-served:
				t.Logf("first connection ended: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return after the cut")
			}
			rs := c1.ResumeState()
			if rs == nil || rs.Handled < 3 || rs.Sent != 2 {
				t.Fatalf("ResumeState = %+v, want at least 3 handled and 2 sent", rs)
			}
			// The peer must notice the loss before the gap messages are
			// sent, or it may still write them to the dead socket (then it
			// resends them after <resumed/>, which is what resumption is
			// for, so either way they must arrive).
			time.Sleep(200 * time.Millisecond)
			for i := range 3 {
				if err := rcv.SendMessage(c1.JID.String(), "chat", fmt.Sprintf("gap-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(200 * time.Millisecond)

			o.Resume = rs
			c2, err := transport.Connect(context.Background(), o)
			if err != nil {
				t.Fatalf("Connect to resume: %v\n%s", err, p.LogTail(20))
			}
			defer c2.Close()
			if !c2.Resumed() || !c2.JID.Equal(c1.JID) {
				t.Fatalf("Resumed=%v JID=%s, want %s resumed\n%s", c2.Resumed(), c2.JID, c1.JID, p.LogTail(20))
			}
			if h, ok := c2.ResumeAcked(); !ok || h != 2 {
				t.Fatalf("ResumeAcked = %d, %v; want 2, true", h, ok)
			}
			in2 := &bodies{}
			go func() { _ = c2.Session.Serve(in2) }()
			in2.wait(t, 3, 10*time.Second)
			send(c2, "out-3")
			barrier(c2)
			time.Sleep(300 * time.Millisecond)
			in2.mu.Lock()
			got := slices.Clone(in2.got)
			in2.mu.Unlock()
			if want := []string{"gap-0", "gap-1", "gap-2"}; !slices.Equal(got, want) {
				t.Fatalf("after resuming received %q, want %q", got, want)
			}
			st := c2.SMStats()
			t.Logf("%s resumed: %+v", name, st)
			if !st.Resumed || st.Sent != 3 || st.Acked != 3 || st.Handled != rs.Handled+3 {
				t.Fatalf("counters after resuming: %+v, want 3 sent and acked, %d handled", st, rs.Handled+3)
			}
			for _, want := range []string{"out-1", "out-2", "out-3"} {
				rcv.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool { return s.Name == "message" && s.Body == want })
			}
		})
	}
}

// TestCrierResumes runs the crier binary through a loopback proxy to each
// peer and cuts its connection: crier resumes the session, stays in its
// room (the room never sees it leave or join), and answers the pings sent
// to it while it had no connection, once each.
func TestCrierResumes(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			lobby := newRoom(p, "resume")
			crierFull := "crier@" + p.Domain + "/" + crierNick
			proxy := startCutProxy(t, p.C2S)
			x := tcpXMPP(p, "starttls", p.Account(t, "crier").Password)
			x.Address = proxy.addr()
			d := crierproc.Run(t, x, roomsTOML(lobby)+pingRule)
			d.WaitReady(t, 45*time.Second)
			alice := dialAs(t, p, "alice", fmt.Sprintf("resume-%d", time.Now().UnixNano()))
			if err := alice.Join(lobby, "alice"); err != nil {
				t.Fatalf("alice joins %s: %v", lobby, err)
			}
			pingUntilPong(t, alice, 20*time.Second,
				func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
				isGroupPong(lobby, "alice"))
			alice.Drain()

			proxy.cut()
			time.Sleep(200 * time.Millisecond)
			if err := alice.SendMessage(lobby, "groupchat", "!ping"); err != nil {
				t.Fatal(err)
			}
			if err := alice.SendMessage(crierFull, "chat", "!ping"); err != nil {
				t.Fatal(err)
			}
			alice.Expect(t, 30*time.Second, isGroupPong(lobby, "alice"))
			alice.Expect(t, 30*time.Second, isChatPong("crier@"+p.Domain, "alice"))
			d.WaitReady(t, 10*time.Second)
			time.Sleep(500 * time.Millisecond)
			dups := 0
			for _, s := range alice.Drain() {
				if s.Name == "presence" && s.From == lobby+"/"+crierNick {
					t.Errorf("crier's presence in the room changed although its session was resumed: type %q", s.Type)
				}
				if s.Name == "message" && strings.HasPrefix(s.Body, "pong") {
					t.Logf("came again: %s", s.Raw)
					dups++
				}
			}
			// Exactly once: what the server confirmed in <resumed h/> is
			// not written again, the rest is written once.
			if dups > 0 {
				t.Errorf("%d replies came again after the resumption", dups)
			}
			if v := d.ReadMetric(t, "crier_sessions_resumed_total"); v != 1 {
				t.Errorf("crier_sessions_resumed_total = %v, want 1", v)
			}
			logs := d.Logs()
			for _, want := range []string{"session resumed", "still in room (session resumed)"} {
				if !strings.Contains(logs, want) {
					t.Errorf("crier's log lacks %q:\n%s", want, d.LogTail(40))
				}
			}
		})
	}
}
