package miniserver

import (
	"net/http"

	"crier/internal/wswire"
)

// wsPath is where the HTTP listener serves XMPP over WebSocket.
const wsPath = "/xmpp-websocket"

// WebSocketURL returns the WebSocket endpoint
// ("ws://127.0.0.1:port/xmpp-websocket"), or "" without an HTTP listener.
func (s *Server) WebSocketURL() string {
	a := s.HTTPAddr()
	if a == "" {
		return ""
	}
	return "ws://" + a + wsPath
}

// serveWebSocket upgrades a request to a WebSocket with the xmpp
// subprotocol (RFC 7395) and runs a c2s stream over it, as secure as the
// HTTP connection under it is taken to be (like BOSH). A browser's request
// must come from the page's own origin.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	nc, br, err := wswire.Upgrade(w, r, wswire.SameOrigin)
	if err != nil {
		s.log.Debug("websocket handshake refused", "remote", r.RemoteAddr, "err", err)
		return
	}
	ws := wswire.NewConn(nc, br, false, s.maxStanza+4<<10)
	s.ServeConn(wswire.NewStreamConn(ws, wswire.StreamConfig{}), true)
}
