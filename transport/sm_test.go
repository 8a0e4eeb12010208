package transport

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
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

// inbox collects the bodies of the chat messages a session receives.
type inbox struct {
	mu     sync.Mutex
	bodies []string
}

func (b *inbox) HandleXMPP(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
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
	b.mu.Lock()
	b.bodies = append(b.bodies, m.Body)
	b.mu.Unlock()
	return nil
}

func (b *inbox) get() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.bodies)
}

func (b *inbox) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(b.get()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("received %d messages, want %d: %q", len(b.get()), n, b.get())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return b.get()
}

func barrier(t *testing.T, c *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Barrier(ctx); err != nil {
		t.Fatalf("Barrier: %v", err)
	}
}

// TestSMResume loses the connection under a stream-managed session and
// resumes it: same JID, nothing received twice, what was sent to it in the
// gap delivered, the counters going on, over TCP and BOSH.
func TestSMResume(t *testing.T) {
	s := startSMServer(t, false)
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: s.CertPool()})
	for _, tr := range []string{TransportTCP, TransportBOSH} {
		t.Run(tr, func(t *testing.T) {
			o := miniOptions(s)
			o.Resource = "resume-" + tr
			if tr == TransportBOSH {
				o.Transport, o.BOSHURL, o.Address = TransportBOSH, s.BOSHURL(), ""
			}
			c1 := connect(t, o)
			in1 := &inbox{}
			done := make(chan error, 1)
			go func() { done <- c1.Session.Serve(in1) }()
			barrier(t, c1)
			if st := c1.SMStats(); !st.Resumable || st.Resumed {
				t.Fatalf("first connection: %+v, want resumable and not resumed", st)
			}
			for i := range 5 {
				if err := alice.SendMessage(c1.JID.String(), "chat", fmt.Sprintf("before-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			in1.wait(t, 5)
			for i := range 3 {
				sendChat(t, c1, alice.JID().Bare(), fmt.Sprintf("%s-out-%d", tr, i))
			}
			barrier(t, c1)

			if err := s.Cut(c1.JID.String()); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("Serve returned nil after the connection was cut")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return after the connection was cut")
			}
			rs := c1.ResumeState()
			if rs == nil || rs.ID == "" || rs.Handled != 5 || rs.Sent != 3 || !rs.JID.Equal(c1.JID) || rs.Max != miniserver.DefaultResumeTimeout {
				t.Fatalf("ResumeState = %+v, want id, 5 handled, 3 sent, JID %s, max %s", rs, c1.JID, miniserver.DefaultResumeTimeout)
			}
			waitFor(t, func() bool { st, ok := s.SM(c1.JID.String()); return ok && st.Hibernating })
			// Sent while the session has no connection: kept for it.
			for i := range 4 {
				if err := alice.SendMessage(c1.JID.String(), "chat", fmt.Sprintf("gap-%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, func() bool { st, _ := s.SM(c1.JID.String()); return st.Sent == 9 })

			resumedBefore := s.Stats().Resumed
			o.Resume = rs
			c2 := connect(t, o)
			if !c2.Resumed() || !c2.JID.Equal(c1.JID) {
				t.Fatalf("Resumed=%v JID=%s, want a resumed %s", c2.Resumed(), c2.JID, c1.JID)
			}
			if h, ok := c2.ResumeAcked(); !ok || h != 3 {
				t.Fatalf("ResumeAcked = %d, %v; want 3, true", h, ok)
			}
			in2 := &inbox{}
			go func() { _ = c2.Session.Serve(in2) }()
			got := in2.wait(t, 4)
			if want := []string{"gap-0", "gap-1", "gap-2", "gap-3"}; !slices.Equal(got, want) {
				t.Fatalf("after resuming received %q, want %q", got, want)
			}
			sendChat(t, c2, alice.JID().Bare(), tr+"-after")
			barrier(t, c2)
			if st := c2.SMStats(); !st.Enabled || !st.Resumed || st.Sent != 4 || st.Acked != 4 || st.Handled != 9 {
				t.Fatalf("resumed connection: %+v, want 4 sent and acked, 9 handled", st)
			}
			if n := s.Stats().Resumed - resumedBefore; n != 1 {
				t.Fatalf("server resumed %d sessions, want 1", n)
			}
			if st, _ := s.SM(c2.JID.String()); st.Hibernating || st.Handled != 4 {
				t.Fatalf("server state: %+v", st)
			}
			collectBodies(t, alice, tr+"-after", 1)
			time.Sleep(50 * time.Millisecond)
			if extra := in2.get(); len(extra) != 4 {
				t.Fatalf("received %q after resuming: something came twice", extra)
			}
		})
	}
}

// TestSMResumeFails falls back to binding when the server cannot resume:
// an unknown id, or a server that does not offer resumption.
func TestSMResumeFails(t *testing.T) {
	s := startSMServer(t, false)
	o := miniOptions(s)
	o.Resource = "fresh"
	o.Resume = &Resume{ID: "no-such-session", JID: jid.MustParse("bot@localhost/fresh"), Handled: 7, Sent: 3, Lost: time.Now()}
	c := connect(t, o)
	serve(t, c)
	barrier(t, c)
	if c.Resumed() || c.JID.String() != "bot@localhost/fresh" {
		t.Fatalf("Resumed=%v JID=%s, want a fresh bind", c.Resumed(), c.JID)
	}
	if _, ok := c.ResumeAcked(); ok {
		t.Fatal("ResumeAcked is known after a failed resumption without h")
	}
	if st := c.SMStats(); !st.Enabled || st.Resumed || st.Sent != 0 {
		t.Fatalf("stream management after the fallback: %+v", st)
	}

	// A session of the wrong account is not even tried.
	o.Resume = &Resume{ID: "x", JID: jid.MustParse("mallory@localhost/x")}
	c2 := connect(t, o)
	if c2.Resumed() {
		t.Fatal("resumed another account's session")
	}

	// A server without resumption: nothing to resume after a loss.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nr, err := miniserver.Start(ctx, miniserver.Config{
		Addr: "127.0.0.1:0", Accounts: map[string]string{"bot@localhost": "pw"},
		NoResume: true, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nr.Close()
	c3 := connect(t, miniOptions(nr))
	done := serve(t, c3)
	barrier(t, c3)
	nr.CutAll()
	<-done
	if rs := c3.ResumeState(); rs != nil {
		t.Fatalf("ResumeState = %+v from a server without resumption", rs)
	}
	waitFor(t, func() bool { _, ok := nr.SM(c3.JID.String()); return !ok })
}

// TestSMAnswersBatched: a server that asks for an acknowledgement after
// every stanza it sends (as Prosody does while no request is outstanding)
// gets one answer per answerCount stanzas or per answerDelay, not one per
// request, and every answer carries the full count.
func TestSMAnswersBatched(t *testing.T) {
	s := startSMServer(t, false)
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: s.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: s.CertPool()})
	c := connect(t, miniOptions(s))
	serve(t, c)
	waitFor(t, c.SM)
	const n = 3 * answerCount
	began := time.Now()
	for i := range n {
		if err := alice.SendMessage(c.JID.String(), "chat", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
		// The request follows the message on the server's stream.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Microsecond) {
			if st, _ := s.SM(c.JID.String()); st.Sent >= uint32(i+1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("message %d not routed to the client", i)
			}
		}
		if err := s.RequestAck(c.JID.String()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool {
		st, _ := s.SM(c.JID.String())
		return st.Acked == st.Sent
	})
	st, _ := s.SM(c.JID.String())
	took := time.Since(began)
	// By count: n/answerCount answers; by time: one per answerDelay the
	// loop took, and the last one.
	most := n/answerCount + int(took/answerDelay) + 1
	t.Logf("%d requests after %d stanzas in %v: %d answers (at most %d allowed)", n, st.Sent, took, st.Acks, most)
	if st.Acks > most || st.Acks < n/answerCount {
		t.Fatalf("%d answers to %d requests, want between %d and %d", st.Acks, n, n/answerCount, most)
	}
}

// TestSMAnswerWithinDelay: a lone request is answered after at most
// about answerDelay.
func TestSMAnswerWithinDelay(t *testing.T) {
	s := startSMServer(t, false)
	c := connect(t, miniOptions(s))
	serve(t, c)
	waitFor(t, c.SM)
	began := time.Now()
	if err := s.RequestAck(c.JID.String()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st, _ := s.SM(c.JID.String())
		return st.Acks == 1
	})
	if took := time.Since(began); took > answerDelay+time.Second {
		t.Fatalf("answered after %v, want about %v", took, answerDelay)
	}
}
