package miniserver

import (
	"net/http"
	"testing"
)

// TestWebSocketEndpoint: /xmpp-websocket is served beside BOSH and refuses
// what is not an xmpp WebSocket from the page's own origin.
func TestWebSocketEndpoint(t *testing.T) {
	s := startServer(t, func(c *Config) { c.HTTPAddr = "127.0.0.1:0" })
	if got, want := s.WebSocketURL(), "ws://"+s.HTTPAddr()+"/xmpp-websocket"; got != want {
		t.Fatalf("WebSocketURL = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"plain GET", nil, http.StatusBadRequest},
		{"no xmpp subprotocol", map[string]string{"Sec-WebSocket-Protocol": "chat"}, http.StatusBadRequest},
		{"foreign origin", map[string]string{"Origin": "https://elsewhere.example"}, http.StatusForbidden},
	} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+s.HTTPAddr()+"/xmpp-websocket", nil)
		if tc.header != nil {
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			req.Header.Set("Sec-WebSocket-Protocol", "xmpp")
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}
