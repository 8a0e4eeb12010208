//go:build browser

package browser_test

import (
	"testing"
)

// TestMiniServerWebChatWebSocket: the web chat logs in to the embedded
// server over WebSocket (Strophe.js with a ws:// URL, the server's
// /xmpp-websocket), joins the lobby and talks to the bot there and
// one-to-one. /xmpp-websocket answers nothing but a WebSocket upgrade, so
// the login itself shows that the page spoke WebSocket.
func TestMiniServerWebChatWebSocket(t *testing.T) {
	d := startDemo(t)
	p := openPage(t, "http://"+d.srv.HTTPAddr()+"/?debug=1")
	p.login("alice@localhost", "alice", d.srv.WebSocketURL())
	if online := d.srv.Online("alice@localhost"); len(online) != 1 {
		t.Fatalf("server sees alice's sessions %v after the page logged in, want one", online)
	}
	p.join(lobby, "alice")
	p.send("room", "!ping")
	p.waitLine(1, "li.msg-groupchat.msg-self", "alice", "!ping")
	p.waitLine(1, "li.msg-groupchat.msg-bot", "crier", "pong alice")
	p.send("bot", "!ping")
	p.waitLine(1, "li.msg-chat.msg-bot", "crier", "pong alice")
}
