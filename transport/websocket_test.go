package transport

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"crier/internal/wswire"
)

// TestMiniserverWebSocket logs in over WebSocket (RFC 7395) to the mini
// server, routes a message through it, and closes with <close/>.
func TestMiniserverWebSocket(t *testing.T) {
	s := startMini(t)
	rec := &recorder{}
	o := miniOptions(s)
	o.Transport, o.WSURL, o.Address, o.Tap = TransportWebSocket, s.WebSocketURL(), "", rec
	c := connect(t, o)
	if c.JID.String() != "bot@localhost/crier" || c.Transport != TransportWebSocket || c.Server != s.WebSocketURL() {
		t.Fatalf("JID=%s Transport=%s Server=%s", c.JID, c.Transport, c.Server)
	}
	// ws:// on loopback: not encrypted, so PLAIN stays out.
	if c.Secure || !strings.HasPrefix(c.Mechanism, "SCRAM-SHA-") {
		t.Errorf("Secure=%v Mechanism=%s", c.Secure, c.Mechanism)
	}
	if _, ok := rec.find(In, nsClient, "iq", "bot@localhost/crier"); !ok {
		t.Error("tap missed the bind result")
	}
	roundTrip(t, c, rec)
	st, ok := wswire.StatsOf(c.tc.NetConn())
	if !ok || st.MessagesSent < 5 || st.MessagesReceived < 5 || st.BadMessages != 0 {
		t.Errorf("stats %+v (found %v)", st, ok)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestWebSocketOptions: ws:// is refused towards a host that is not on
// loopback, other schemes are refused, and a missing URL is a config
// error.
func TestWebSocketOptions(t *testing.T) {
	s := startMini(t)
	for _, tc := range []struct {
		url  string
		want error
	}{
		{"ws://192.0.2.1/xmpp-websocket", ErrInsecure},
		{"http://127.0.0.1/xmpp-websocket", ErrConfig},
		{"", ErrConfig},
		{"ws://" + s.HTTPAddr() + "/nothing-here", ErrConnect},
	} {
		o := miniOptions(s)
		o.Transport, o.WSURL, o.Timeout = TransportWebSocket, tc.url, 3*time.Second
		_, err := Connect(context.Background(), o)
		if !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.url, err, tc.want)
		}
	}
}

// TestWebSocketReasons: the ways a WebSocket session can break have their
// metric labels.
func TestWebSocketReasons(t *testing.T) {
	for err, want := range map[error]string{
		wswire.ErrFraming:      "protocol",
		wswire.ErrTooLarge:     "protocol",
		wswire.ErrProtocol:     "protocol",
		wswire.ErrClosedByPeer: "closed",
	} {
		if got := Reason(fmt.Errorf("read: %w", err)); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
}
