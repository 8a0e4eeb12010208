package bot

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/internal/miniserver"
)

// startWSBot runs a bot over WebSocket against srv (its HTTP listener).
func startWSBot(t *testing.T, srv *miniserver.Server) *harness {
	t.Helper()
	cfg := loadConfig(t, fmt.Sprintf("transport = \"websocket\"\nwebsocket_url = %q\nkeepalive = \"2s\"\nkeepalive_timeout = \"2s\"", srv.WebSocketURL()),
		"[limits]\nmax_body_bytes = 50000")
	h := startBot(t, srv, cfg, Options{})
	h.waitReady(10 * time.Second)
	return h
}

// TestWebSocketSession runs the whole bot over WebSocket (RFC 7395):
// login, room, rules in the room and in chat, iq; a cut connection is
// resumed (the bot stays in its room and answers what came meanwhile);
// after a server restart it logs in again and rejoins.
func TestWebSocketSession(t *testing.T) {
	srv := startBOSHServer(t) // the HTTP listener serves /xmpp-websocket too
	h := startWSBot(t, srv)
	if !strings.Contains(h.logs.String(), "transport=websocket") {
		t.Fatalf("the bot did not connect over WebSocket:\n%s", h.logs.String())
	}

	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
	_ = alice.SendMessage(botFull, "chat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(botFull, "pong alice"))
	// A stanza far larger than one read or one TCP segment.
	big := strings.Repeat("x", 40<<10)
	_ = alice.SendMessage(botFull, "chat", "!echo "+big)
	alice.Expect(t, 5*time.Second, isBody(botFull, big))
	v, err := alice.IQ(context.Background(), botFull, "get", "<query xmlns='jabber:iq:version'/>")
	if err != nil || !strings.Contains(v.Raw, "crier") {
		t.Fatalf("version over WebSocket: %v %s", err, v.Raw)
	}

	// A network failure: the session is resumed, not bound again.
	since := alice.Seq()
	if err := srv.Cut(botFull); err != nil {
		t.Fatal(err)
	}
	_ = alice.SendMessage(botFull, "chat", "!ping")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 10*time.Second, isBody(botFull, "pong alice"))
	alice.Expect(t, 10*time.Second, isBody(room+"/crier", "pong alice"))
	h.waitReady(5 * time.Second)
	if n := srv.Stats().Resumed; n != 1 {
		t.Fatalf("server resumed %d sessions, want 1\nlog:\n%s", n, h.logs.String())
	}
	if got := counter(t, h.bot, "crier_sessions_resumed_total"); got != 1 {
		t.Fatalf("crier_sessions_resumed_total = %v, want 1", got)
	}
	time.Sleep(300 * time.Millisecond)
	for _, s := range alice.Drain() {
		if s.Seq <= since {
			continue
		}
		if s.Name == "presence" && s.From == room+"/crier" {
			t.Errorf("the bot's presence in the room changed although the session was resumed: type %q", s.Type)
		}
		if s.Name == "message" && s.Body == "pong alice" {
			t.Errorf("a pong came twice after the resumption")
		}
	}

	// A server restart: no session to resume, a new login and a rejoin.
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.waitRejoined(15 * time.Second)
	alice2 := h.user("alice")
	if err := alice2.Join(room, "alice"); err != nil {
		t.Fatal(err)
	}
	_ = alice2.SendMessage(room, "groupchat", "!ping")
	alice2.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))
}

// frameProxy forwards WebSocket connections to the mini server's HTTP
// listener and can write raw bytes to the bot between the server's frames,
// or drop the connections.
type frameProxy struct {
	ln    net.Listener
	mu    sync.Mutex // held while a chunk from the server is written
	conns []net.Conn // the bot's side of each proxied connection
	peers []net.Conn
}

func startFrameProxy(t *testing.T, target string) *frameProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &frameProxy{ln: ln}
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
			p.conns, p.peers = append(p.conns, c), append(p.peers, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close() }()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						p.mu.Lock()
						_, werr := c.Write(buf[:n])
						p.mu.Unlock()
						if werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.drop() })
	return p
}

// inject writes raw to the bot on every connection, between frames.
func (p *frameProxy) inject(raw []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_, _ = c.Write(raw)
	}
}

// drop closes every proxied connection without a close frame.
func (p *frameProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range append(p.conns, p.peers...) {
		c.Close()
	}
	p.conns, p.peers = nil, nil
}

// serverFrame is one unmasked frame as a server sends it.
func serverFrame(op byte, payload []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	default:
		b = append(b, 126, byte(n>>8), byte(n))
	}
	return append(b, payload...)
}

// TestWebSocketBadInput has the WebSocket under the bot break in each way
// a server or a network can break it: a close frame without <close/>, a
// dropped connection, a text message that is not one element, a binary
// message, a message over the size limit. Each time the bot logs the lost
// session with the cause, counts it under crier_disconnects_total, resumes
// its session and answers again.
func TestWebSocketBadInput(t *testing.T) {
	srv := startBOSHServer(t)
	proxy := startFrameProxy(t, srv.HTTPAddr())
	url := "ws://" + proxy.ln.Addr().String() + "/xmpp-websocket"
	cfg := loadConfig(t, fmt.Sprintf("transport = \"websocket\"\nwebsocket_url = %q\nkeepalive = \"30s\"\nkeepalive_timeout = \"5s\"", url), "")
	h := startBot(t, srv, cfg, Options{SelfPing: -1})
	h.waitReady(10 * time.Second)
	alice := joinRoom(t, h, "alice")
	_ = alice.SendMessage(room, "groupchat", "!ping")
	alice.Expect(t, 5*time.Second, isBody(room+"/crier", "pong alice"))

	closeGoingAway := serverFrame(0x8, append([]byte{0x03, 0xe9}, "bye"...))
	huge := []byte{0x81, 127, 0, 0, 1, 0, 0, 0, 0, 0}
	for i, tc := range []struct {
		name   string
		break_ func()
		want   string // in the log line of the lost session
		reason string
	}{
		{"close frame without <close/>", func() { proxy.inject(closeGoingAway) }, "close frame 1001 (bye)", "closed"},
		{"connection dropped", proxy.drop, "without a close frame", "closed"},
		{"two elements in one message", func() { proxy.inject(serverFrame(0x1, []byte("<r xmlns='urn:xmpp:sm:3'/><r xmlns='urn:xmpp:sm:3'/>"))) }, "more than one element", "protocol"},
		{"half an element", func() { proxy.inject(serverFrame(0x1, []byte("<message><body>half"))) }, "incomplete element", "protocol"},
		{"binary message", func() { proxy.inject(serverFrame(0x2, []byte("<r xmlns='urn:xmpp:sm:3'/>"))) }, "binary message", "protocol"},
		{"oversized message", func() { proxy.inject(huge) }, "message too large", "protocol"},
	} {
		lost := strings.Count(h.logs.String(), "session lost")
		before := counter(t, h.bot, "crier_disconnects_total")
		time.Sleep(50 * time.Millisecond) // let the server's last frames through
		tc.break_()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(h.logs.String(), "session lost") == lost {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the bot did not notice\n%s", tc.name, h.logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		var last string
		for _, l := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(l, "session lost") {
				last = l
			}
		}
		if !strings.Contains(last, tc.want) || !strings.Contains(last, "reason="+tc.reason) {
			t.Errorf("%s: the lost session is logged as %q, want %q and reason %s", tc.name, last, tc.want, tc.reason)
		}
		if got := counter(t, h.bot, "crier_disconnects_total"); got != before+1 {
			t.Errorf("%s: crier_disconnects_total %v -> %v, want one more", tc.name, before, got)
		}
		_ = alice.SendMessage(room, "groupchat", "!ping")
		alice.Expect(t, 10*time.Second, isBody(room+"/crier", "pong alice"))
		h.waitReady(5 * time.Second)
		if got := counter(t, h.bot, "crier_sessions_resumed_total"); got != float64(i+1) {
			t.Errorf("%s: %v sessions resumed, want %d", tc.name, got, i+1)
		}
	}
}
