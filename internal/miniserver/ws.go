package miniserver

import (
	"encoding/xml"
	"net/http"
	"strings"

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
	if uri := s.takeRedirect(); uri != "" {
		// RFC 7395 §3.6.1: answer the client's <open/> with a <close/>
		// that names the endpoint to use instead.
		defer nc.Close()
		if _, err := ws.ReadMessage(); err != nil {
			return
		}
		var b strings.Builder
		b.WriteString("<close xmlns='" + wswire.NSFraming + "' see-other-uri='")
		_ = xml.EscapeText(&b, []byte(uri))
		b.WriteString("'/>")
		if ws.WriteText([]byte(b.String())) == nil {
			_ = ws.WriteClose(wswire.CloseNormal, "")
		}
		return
	}
	s.ServeConn(wswire.NewStreamConn(ws, wswire.StreamConfig{}), true)
}

// RedirectWebSocket makes the next n WebSocket connections end at once
// with <close see-other-uri='uri'/> (RFC 7395 §3.6.1), as a server moving
// its clients to another endpoint does.
func (s *Server) RedirectWebSocket(uri string, n int) {
	s.wsRedirect.Lock()
	defer s.wsRedirect.Unlock()
	s.wsRedirect.uri, s.wsRedirect.n = uri, n
}

// takeRedirect returns the see-other-uri for this connection, or "".
func (s *Server) takeRedirect() string {
	s.wsRedirect.Lock()
	defer s.wsRedirect.Unlock()
	if s.wsRedirect.n <= 0 {
		return ""
	}
	s.wsRedirect.n--
	return s.wsRedirect.uri
}
