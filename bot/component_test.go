package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"crier/internal/config"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
	"crier/plugins"
)

const compDomain = "alerts.localhost"

// startComponentBot runs the bot as a component of a mini server.
func startComponentBot(t *testing.T, secret, extra string) (*harness, *miniserver.Server) {
	t.Helper()
	return startComponentBotWith(t, false, secret, extra)
}

// startComponentBotWith is startComponentBot against a server that
// offers stream management to components when sm is set.
func startComponentBotWith(t *testing.T, sm bool, secret, extra string) (*harness, *miniserver.Server) {
	t.Helper()
	srv := startMini(t, miniserver.Config{
		ComponentAddr: "127.0.0.1:0",
		Components:    map[string]string{compDomain: "s3cret"},
		ComponentSM:   sm,
	})
	src := fmt.Sprintf(`
[xmpp]
transport = "component"
jid = %q
password = %q
address = %q
tls = "none"
from = "bot@%s"
keepalive = "1s"
keepalive_timeout = "1s"
connect_timeout = "5s"

[[rooms]]
jid = %q
%s
%s`, compDomain, secret, srv.ComponentAddr(), compDomain, room, baseRules, extra)
	cfg, err := config.LoadBytes("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return startBot(t, srv, cfg, Options{}), srv
}

// TestComponentSession: the bot as an XEP-0114 component answers at any
// address on its domain, from the address that was written to; it joins
// its room from its own address on the domain and answers there; it sends
// no presence of its own beyond the room's.
func TestComponentSession(t *testing.T) {
	h, srv := startComponentBot(t, "s3cret", "")
	h.waitReady(10 * time.Second)
	if !srv.ComponentConnected(compDomain) {
		t.Fatal("the component is not connected")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(srv.Occupants(room), "bot") {
		if time.Now().After(deadline) {
			t.Fatalf("the bot is not in the room: %v\n%s", srv.Occupants(room), h.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/bot", "pong alice"))
	if occ, ok := srv.OccupantJID(room, "bot"); !ok || occ != "bot@"+compDomain+"/crier" {
		t.Fatalf("the bot's occupant is %q (%v), want the real JID bot@%s/crier", occ, ok, compDomain)
	}

	for _, addr := range []string{"bot@" + compDomain, "disk@" + compDomain, compDomain} {
		_ = alice.SendMessage(addr, "chat", "!ping")
		alice.Expect(t, 5*time.Second, isBody(addr, "pong alice"))
	}
	v, err := alice.IQ(context.Background(), "ci@"+compDomain, "get", "<query xmlns='jabber:iq:version'/>")
	if err != nil || !strings.Contains(v.Raw, "crier") || v.From != "ci@"+compDomain {
		t.Fatalf("version from ci@%s: %v %s", compDomain, err, v.Raw)
	}
	for _, s := range alice.Drain() {
		if s.Name == "presence" && strings.HasSuffix(s.From, compDomain) {
			t.Errorf("the component sent presence outside the room: %s", s.Raw)
		}
	}

	// A room joined by command without a nick takes the component's
	// own address's localpart.
	const other = "other@conference.localhost"
	if err := h.bot.joinByCommand(other, "", ""); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for !slices.Contains(srv.Occupants(other), "bot") {
		if time.Now().After(deadline) {
			t.Fatalf("not in %s: %v", other, srv.Occupants(other))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestComponentUnservedAddress: with [xmpp] addresses set, a message or
// an iq to another address of the domain is answered service-unavailable,
// logged and counted.
func TestComponentUnservedAddress(t *testing.T) {
	h, _ := startComponentBot(t, "s3cret", "")
	h.waitReady(10 * time.Second)
	x := h.bot.cfg.Load().cfg.XMPP
	if len(x.Addresses) != 0 {
		t.Fatal("unexpected addresses")
	}
	h.bot.cfg.Load().cfg.XMPP.Addresses = []string{"disk@" + compDomain}

	alice := h.user("alice")
	_ = alice.SendMessage("nobody@"+compDomain, "chat", "!ping")
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.Type == "error" && s.From == "nobody@"+compDomain && strings.Contains(s.Raw, "service-unavailable")
	})
	_, err := alice.IQ(context.Background(), "nobody@"+compDomain, "get", "<query xmlns='jabber:iq:version'/>")
	if err == nil || !strings.Contains(err.Error(), "service-unavailable") {
		t.Fatalf("iq to an unserved address: %v", err)
	}
	if got := counterWith(t, h.bot.met.rejected, "unserved_address"); got != 2 {
		t.Errorf("crier_rejected_total = %v, want 2 (unserved_address)", got)
	}
	if !strings.Contains(h.logs.String(), "does not serve") {
		t.Error("no log line for the unserved address")
	}
	// The listed and the bot's own address are still served.
	for _, addr := range []string{"disk@" + compDomain, "bot@" + compDomain} {
		_ = alice.SendMessage(addr, "chat", "!ping")
		alice.Expect(t, 5*time.Second, isBody(addr, "pong alice"))
	}
}

// TestComponentWrongSecret: a refused secret is one clear log line per
// attempt, counted as an auth failure, and the bot waits the longest
// interval before the next try.
func TestComponentWrongSecret(t *testing.T) {
	h, _ := startComponentBot(t, "wrong", "")
	deadline := time.Now().Add(5 * time.Second)
	for counterWith(t, h.bot.met.reconnects, "auth") < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // MaxBackoff is 200 ms here: a second try at most
	logs := h.logs.String()
	if n := strings.Count(logs, "refused the component secret"); n < 1 || n > 3 {
		t.Fatalf("%d log lines about the secret, want 1 to 3 (one per try)\n%s", n, logs)
	}
	if strings.Contains(logs, "wrong") && strings.Contains(logs, `password=wrong`) {
		t.Error("the secret is in the log")
	}
	if got := counterWith(t, h.bot.met.reconnects, "auth"); got < 1 {
		t.Errorf("crier_disconnects_total{reason=auth} = %v", got)
	}
	if ok, why := h.bot.Ready(); ok || !strings.Contains(strings.Join(why, " "), "auth") {
		t.Errorf("ready = %v %v, want not ready for auth", ok, why)
	}
}

// TestComponentPluginFrom: a plugin's message goes from the address it
// names; a client bot refuses one.
func TestComponentPluginFrom(t *testing.T) {
	h, _ := startComponentBot(t, "s3cret", "")
	h.waitReady(10 * time.Second)
	alice := h.user("alice")
	// Available (her presence is back) before a headline can reach her.
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Name == "presence" && s.From == s.To })
	done := make(chan error, 1)
	if err := h.bot.pluginSend(plugins.Message{From: "disk@" + compDomain, To: "alice@localhost", Type: "headline", Body: "disk full"}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("delivery: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
	alice.Expect(t, 5*time.Second, isBody("disk@"+compDomain, "disk full"))
	if err := h.bot.pluginSend(plugins.Message{From: "disk@elsewhere.localhost", To: "alice@localhost", Body: "x"}, nil); err == nil {
		t.Error("a from off the domain was accepted")
	}
}

// counterWith reads one labelled counter of a vector.
func counterWith(t *testing.T, v *prometheus.CounterVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := v.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestComponentSendOnce: crier send as a component sends from [xmpp]
// from (--from) to a user, and into a room from an occupant address under
// it; a second connection for the domain is refused while one is up.
func TestComponentSendOnce(t *testing.T) {
	srv := startMini(t, miniserver.Config{
		ComponentAddr: "127.0.0.1:0",
		Components:    map[string]string{compDomain: "s3cret"},
	})
	src := fmt.Sprintf(`
[xmpp]
transport = "component"
jid = %q
password = "s3cret"
address = %q
tls = "none"
from = "ci@%s"
connect_timeout = "5s"
`, compDomain, srv.ComponentAddr(), compDomain)
	cfg, err := config.LoadBytes("send.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: srv.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: srv.CertPool(), Timeout: 5 * time.Second})
	if err := alice.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = SendOnce(ctx, cfg, Options{}, OneShot{To: "alice@localhost", Type: "chat", Body: "build green"}, OneShot{To: room, Type: "groupchat", Body: "deployed"})
	if err != nil {
		t.Fatalf("SendOnce: %v", err)
	}
	alice.Expect(t, 5*time.Second, isBody("ci@"+compDomain, "build green"))
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool {
		return s.Name == "message" && strings.HasPrefix(s.From, room+"/ci-send-") && s.Body == "deployed"
	})

	// One connection per component: the bot holds the domain, a send is
	// refused (as by Prosody's default) and says why.
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(5 * time.Second)
	err = SendOnce(ctx, cfg, Options{}, OneShot{To: "alice@localhost", Type: "chat", Body: "x"})
	if err == nil || !strings.Contains(err.Error(), "conflict") {
		t.Fatalf("a second component connection: %v", err)
	}
}

// TestComponentBurst: stanzas the outbox writes together each carry their
// from (the mini server, like ejabberd, ends the stream of a component
// that leaves it out); a burst arrives whole on one connection, confirmed
// by pings, or by stream management where the server offers it to
// components.
func TestComponentBurst(t *testing.T) {
	for _, sm := range []bool{false, true} {
		t.Run(fmt.Sprintf("sm=%v", sm), func(t *testing.T) { componentBurst(t, sm) })
	}
}

func componentBurst(t *testing.T, sm bool) {
	h, _ := startComponentBotWith(t, sm, "s3cret", "")
	h.waitReady(10 * time.Second)
	alice := h.user("alice")
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Name == "presence" && s.From == s.To })
	const n = 300
	for i := range n {
		if err := h.bot.pluginSend(plugins.Message{To: "alice@localhost", Type: "chat", Body: fmt.Sprint("ev ", i)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		alice.Expect(t, 10*time.Second, isBody("bot@"+compDomain, fmt.Sprint("ev ", i)))
	}
	if got := counter(t, h.bot, "crier_disconnects_total"); got != 0 {
		t.Fatalf("%v disconnects during the burst\n%s", got, h.logs.String())
	}
	h.bot.connMu.Lock()
	conn := h.bot.conn
	h.bot.connMu.Unlock()
	st := conn.SMStats()
	// The last acknowledgements may come after the last message arrived.
	for deadline := time.Now().Add(5 * time.Second); sm && st.Acked < n && time.Now().Before(deadline); st = conn.SMStats() {
		time.Sleep(10 * time.Millisecond)
	}
	if st.Enabled != sm || (sm && st.Acked < n) {
		t.Fatalf("stream management %+v, want enabled=%v (and every stanza acknowledged)", st, sm)
	}
}

// TestComponentUnknownIQ: an iq nothing handles is answered
// service-unavailable from the address asked (a from-less answer would end
// the component's stream on ejabberd and the mini server), and the
// connection stays up.
func TestComponentUnknownIQ(t *testing.T) {
	h, _ := startComponentBot(t, "s3cret", "")
	h.waitReady(10 * time.Second)
	alice := h.user("alice")
	for _, q := range []struct{ to, typ, payload string }{
		{"bot@" + compDomain, "get", "<query xmlns='urn:example:nothing'/>"},
		{"x@" + compDomain, "get", "<query xmlns='urn:example:nothing'/>"},
		{compDomain, "get", "<query xmlns='urn:example:nothing'/>"},
		// Handled, but not answered by its handler (a roster push from
		// a stranger): mellium's own answer would have no from.
		{"bot@" + compDomain, "set", "<query xmlns='jabber:iq:roster'><item jid='eve@localhost'/></query>"},
	} {
		to := q.to
		_, err := alice.IQ(context.Background(), to, q.typ, q.payload)
		var se *xmpptest.StanzaError
		if !errors.As(err, &se) || se.Condition != "service-unavailable" || se.Stanza.From != to {
			t.Fatalf("unknown iq to %s: %v", to, err)
		}
	}
	_ = alice.SendMessage("bot@"+compDomain, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody("bot@"+compDomain, "pong alice"))
	if got := counter(t, h.bot, "crier_disconnects_total"); got != 0 {
		t.Fatalf("%v disconnects\n%s", got, h.logs.String())
	}
}

// TestComponentAdHoc: an ad-hoc command (XEP-0050, answered by the
// commands plugin through the plugin iq path) run at an address of the
// component is answered from it, and the connection stays up.
func TestComponentAdHoc(t *testing.T) {
	h, _ := startComponentBot(t, "s3cret", "")
	h.waitReady(10 * time.Second)
	alice := h.user("alice")
	for _, to := range []string{"bot@" + compDomain, "ops@" + compDomain} {
		res, err := alice.IQ(context.Background(), to, "set", "<command xmlns='http://jabber.org/protocol/commands' node='version' action='execute'/>")
		if err != nil || res.From != to || !strings.Contains(res.Raw, "crier") {
			t.Fatalf("ad-hoc version at %s: %v %s", to, err, res.Raw)
		}
	}
	if got := counter(t, h.bot, "crier_disconnects_total"); got != 0 {
		t.Fatalf("%v disconnects\n%s", got, h.logs.String())
	}
}
