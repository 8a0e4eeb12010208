package transport

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

// startSMServer runs the embedded server with the accounts bot and alice;
// noSM turns stream management off on the server.
func startSMServer(t *testing.T, noSM bool) *miniserver.Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := miniserver.Start(ctx, miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Accounts: map[string]string{"bot@localhost": "pw", "alice@localhost": "alicepw"},
		NoSM:     noSM,
		Logger:   slog.New(slog.DiscardHandler),
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		cancel()
	})
	return s
}

// collectBodies waits until alice has received n distinct message bodies
// starting with prefix and returns how many messages carried them in all.
func collectBodies(t *testing.T, alice *xmpptest.Client, prefix string, n int) int {
	t.Helper()
	seen := make(map[string]bool)
	total := 0
	for range 10 * n { // duplicates are possible, endless input is not
		if len(seen) == n {
			return total
		}
		st, err := alice.Wait(context.Background(), 0, 10*time.Second, func(s xmpptest.Stanza) bool {
			return s.Name == "message" && strings.HasPrefix(s.Body, prefix)
		})
		if err != nil {
			t.Fatalf("alice received %d of %d messages: %v", len(seen), n, err)
		}
		seen[st.Body] = true
		total++
	}
	t.Fatalf("alice received %d of %d distinct messages among %d", len(seen), n, total)
	return total
}

func sendChat(t *testing.T, c *Conn, to jid.JID, body string) {
	t.Helper()
	msg := stanza.Message{To: to, Type: stanza.ChatMessage}
	payload := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := c.Session.Send(context.Background(), msg.Wrap(payload)); err != nil {
		t.Fatal(err)
	}
}

// TestSMBarrier sends a burst while stream management is still being
// enabled, and checks that Barrier returns only once the server has routed
// all of it, over TCP and BOSH.
func TestSMBarrier(t *testing.T) {
	s := startSMServer(t, false)
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: s.CertPool()})
	for _, tr := range []string{TransportTCP, TransportBOSH} {
		t.Run(tr, func(t *testing.T) {
			o := miniOptions(s)
			if tr == TransportBOSH {
				o.Transport, o.BOSHURL, o.Address = TransportBOSH, s.BOSHURL(), ""
			}
			c := connect(t, o)
			serve(t, c)
			const n = 100
			prefix := tr + "-"
			for i := range n {
				sendChat(t, c, alice.JID().Bare(), fmt.Sprintf("%s%d", prefix, i))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Barrier(ctx); err != nil {
				t.Fatalf("Barrier: %v", err)
			}
			// The server counts a stanza once routed: when Barrier returns,
			// all n are on their way to alice.
			st, ok := s.SM(c.JID.String())
			if !ok || !st.Enabled || st.Handled != n {
				t.Fatalf("server state after Barrier: %+v (bound %v), want %d handled", st, ok, n)
			}
			cs := c.SMStats()
			if !c.SM() || !cs.Enabled || cs.Sent != n || cs.Acked != n || cs.Unacked != 0 || c.Acked() != n {
				t.Fatalf("client stats after Barrier: %+v SM=%v", cs, c.SM())
			}
			if got := collectBodies(t, alice, prefix, n); got != n {
				t.Errorf("alice got %d messages, want %d", got, n)
			}
		})
	}
}

// TestSMCountsConsumedResults checks that the client counts the iq results
// that mellium hands to SendIQ, and answers the server's <r/> with the
// count the server expects.
func TestSMCountsConsumedResults(t *testing.T) {
	s := startSMServer(t, false)
	rec := &recorder{}
	o := miniOptions(s)
	o.Tap = rec
	c := connect(t, o)
	serve(t, c)
	waitFor(t, c.SM)
	before := c.SMStats().Handled
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := ping.Send(ctx, c.Session, c.JID.Domain())
		cancel()
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	if got := c.SMStats().Handled - before; got != 3 {
		t.Fatalf("handled grew by %d over three ping results, want 3", got)
	}
	if err := s.RequestAck(c.JID.String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, _ := s.SM(c.JID.String())
		return st.Acks == 1
	})
	st, _ := s.SM(c.JID.String())
	if st.Sent < 3 || st.Acked != st.Sent || st.Acked != c.SMStats().Handled {
		t.Errorf("server %+v, client handled %d: the client's h must equal what the server sent", st, c.SMStats().Handled)
	}
	if c.SMStats().Requests != 1 {
		t.Errorf("requests answered = %d, want 1", c.SMStats().Requests)
	}
	if _, ok := rec.find(Out, nsSM, "a", ""); !ok {
		t.Error("the tap did not see the <a/> answer go out")
	}
}

// TestSMFallback checks that Barrier reports ErrNoSM when the server does
// not offer stream management or the options turn it off, without sending
// anything the server would refuse.
func TestSMFallback(t *testing.T) {
	for _, tc := range []struct {
		name       string
		noSM, skip bool
	}{
		{"server-without-sm", true, false},
		{"disabled-by-options", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSMServer(t, tc.noSM)
			rec := &recorder{}
			o := miniOptions(s)
			o.Tap, o.DisableSM = rec, tc.skip
			c := connect(t, o)
			done := serve(t, c)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			start := time.Now()
			if err := c.Barrier(ctx); !errors.Is(err, ErrNoSM) {
				t.Fatalf("Barrier = %v, want ErrNoSM", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Barrier took %v to report ErrNoSM", d)
			}
			if c.SM() {
				t.Error("SM() = true")
			}
			if _, ok := rec.find(Out, nsSM, "enable", ""); ok {
				t.Error("<enable/> sent although stream management is off")
			}
			if st, ok := s.SM(c.JID.String()); !ok || st.Enabled {
				t.Errorf("server state %+v (bound %v)", st, ok)
			}
			select {
			case err := <-done:
				t.Fatalf("session ended: %v", err)
			default:
			}
		})
	}
}

// TestSMAckTooHigh checks that an acknowledgement of more stanzas than were
// sent ends the connection and fails Barrier with ErrProtocol.
func TestSMAckTooHigh(t *testing.T) {
	s := startSMServer(t, false)
	rec := &recorder{}
	o := miniOptions(s)
	o.Tap = rec
	c := connect(t, o)
	done := serve(t, c)
	waitFor(t, c.SM)
	if err := s.SendRaw(c.JID.String(), []byte("<a xmlns='urn:xmpp:sm:3' h='7'/>")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection survived an impossible acknowledgement")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Barrier(ctx); !errors.Is(err, ErrProtocol) {
		t.Errorf("Barrier = %v, want ErrProtocol", err)
	}
	if _, ok := rec.find(Out, nsStream, "error", "handled-count-too-high"); !ok {
		t.Error("no <handled-count-too-high/> stream error was sent")
	}
}

// TestSMCountersWrap checks the counters' arithmetic modulo 2^32.
func TestSMCountersWrap(t *testing.T) {
	m := newSMState(slog.New(slog.DiscardHandler))
	m.phase, m.counting = smOn, true
	m.sent, m.acked = 4294967290, 4294967280
	for range 8 { // sent wraps from 4294967295 to 2
		m.seeOut(xml.Name{Space: nsClient, Local: "message"})
	}
	if m.sent != 2 {
		t.Fatalf("sent = %d, want 2", m.sent)
	}
	ack := func(h string) {
		m.seeIn(xml.Name{Space: nsSM, Local: "a"}, []byte("<a xmlns='urn:xmpp:sm:3' h='"+h+"'/>"))
	}
	ack("4294967295")
	if m.acked != 4294967295 || m.err != nil {
		t.Fatalf("acked = %d, err = %v", m.acked, m.err)
	}
	ack("4294967290") // an older count does not move it back
	if m.acked != 4294967295 {
		t.Fatalf("acked moved back to %d", m.acked)
	}
	ack("2")
	if m.acked != 2 || m.err != nil {
		t.Fatalf("acked = %d, err = %v", m.acked, m.err)
	}
	ack("3")
	if !errors.Is(m.err, ErrProtocol) {
		t.Fatalf("h above the sent count: err = %v", m.err)
	}
	select {
	case se := <-m.fault:
		if !strings.Contains(se, "send-count='2'") {
			t.Errorf("stream error %q", se)
		}
	default:
		t.Error("no stream error queued")
	}
}
