package wswire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// pair returns the client and the server end of a WebSocket connection
// made through a real handshake on loopback.
func pair(t *testing.T) (client, server *Conn) {
	t.Helper()
	got := make(chan *Conn, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, br, err := Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		got <- NewConn(nc, br, false, 1<<20)
	}))
	t.Cleanup(hs.Close)
	u, _ := url.Parse(strings.Replace(hs.URL, "http://", "ws://", 1) + "/xmpp-websocket")
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	br, err := ClientHandshake(nc, u, ClientOptions{Origin: "http://" + u.Host})
	if err != nil {
		t.Fatal(err)
	}
	client = NewConn(nc, br, true, 1<<20)
	select {
	case server = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no server end")
	}
	t.Cleanup(func() { server.NetConn().Close() })
	return client, server
}

// rawFrame builds one frame as a client (masked) or a server would.
func rawFrame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	m := byte(0)
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	p := bytes.Clone(payload)
	if masked {
		key := [4]byte{1, 2, 3, 4}
		b = append(b, key[:]...)
		maskBytes(p, key)
	}
	return append(b, p...)
}

// readFrames reads n frames as they are on the wire and returns, for each,
// its FIN bit, opcode and payload; fromClient says they are masked.
func readFrames(t *testing.T, r *bufio.Reader, n int, fromClient ...bool) []struct {
	fin     bool
	op      byte
	payload []byte
} {
	t.Helper()
	var out []struct {
		fin     bool
		op      byte
		payload []byte
	}
	for range n {
		c := &Conn{br: r, client: len(fromClient) > 0 && !fromClient[0], max: 1 << 24}
		fin, op, p, err := c.readFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", len(out), err)
		}
		out = append(out, struct {
			fin     bool
			op      byte
			payload []byte
		}{fin, op, p})
	}
	return out
}

func TestHandshakeRefusals(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := Upgrade(w, r, nil); err == nil || !errors.Is(err, ErrHandshake) {
			t.Errorf("upgrade of %v: %v", r.Header, err)
		}
	}))
	defer hs.Close()
	for _, tc := range []struct {
		name string
		edit func(h http.Header)
		want int
	}{
		{"no xmpp subprotocol", func(h http.Header) { h.Set("Sec-WebSocket-Protocol", "chat") }, http.StatusBadRequest},
		{"foreign origin", func(h http.Header) { h.Set("Origin", "https://evil.example") }, http.StatusForbidden},
		{"old version", func(h http.Header) { h.Set("Sec-WebSocket-Version", "8") }, http.StatusUpgradeRequired},
		{"no upgrade", func(h http.Header) { h.Del("Upgrade") }, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(http.MethodGet, hs.URL, nil)
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Protocol", "xmpp")
		tc.edit(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
	// RFC 6455 §1.3's example.
	if got := AcceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Errorf("AcceptKey = %q", got)
	}
}

// TestClientRefusesServerWithoutXMPP: a server that upgrades without
// agreeing to the xmpp subprotocol is refused.
func TestClientRefusesServerWithoutXMPP(t *testing.T) {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Sec-WebSocket-Accept", AcceptKey(r.Header.Get("Sec-WebSocket-Key")))
		w.WriteHeader(http.StatusSwitchingProtocols)
	}))
	defer hs.Close()
	u, _ := url.Parse(strings.Replace(hs.URL, "http://", "ws://", 1))
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := ClientHandshake(nc, u, ClientOptions{}); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "subprotocol") {
		t.Fatalf("handshake: %v", err)
	}
}

// TestLargeStanzaIsOneFrame: an element written in many pieces (as
// mellium writes a large stanza) goes out as one message in one frame, and
// the stream header and end become <open/> and <close/>.
func TestLargeStanzaIsOneFrame(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	sc := NewStreamConn(NewConn(a, nil, true, 0), StreamConfig{Client: true})
	body := strings.Repeat("y", 300<<10)
	stanza := "<message to='a@example.org'><body>" + body + "</body></message>"
	go func() {
		_, _ = io.WriteString(sc, `<?xml version='1.0'?><stream:stream to='example.org' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)
		for i := 0; i < len(stanza); i += 1000 {
			_, _ = io.WriteString(sc, stanza[i:min(i+1000, len(stanza))])
		}
		_, _ = io.WriteString(sc, " </stream:stream>")
	}()
	fs := readFrames(t, bufio.NewReader(b), 4)
	want := []string{
		"<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.org' version='1.0' xml:lang='en'/>",
		"<message xmlns='jabber:client' to='a@example.org'><body>" + body + "</body></message>",
		"", // the whitespace: a ping
		"<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>",
	}
	ops := []byte{opText, opText, opPing, opText}
	for i, f := range fs {
		if !f.fin || f.op != ops[i] || string(f.payload) != want[i] {
			t.Errorf("frame %d: fin %v op %#x %.120q, want op %#x %.120q", i, f.fin, f.op, f.payload, ops[i], want[i])
		}
	}
	if st := sc.Stats(); st.MessagesSent != 3 || st.PingsSent != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestStreamRead: messages become an XMPP stream (open, features without
// starttls, a fragmented stanza, close), and the connection then ends
// cleanly with a close frame.
func TestStreamRead(t *testing.T) {
	client, server := pair(t)
	sc := NewStreamConn(client, StreamConfig{Client: true, StripStartTLS: true})
	w := server.NetConn()
	stanza := "<message xmlns='jabber:client' from='b@example.org'><body>" + strings.Repeat("z", 70000) + "</body></message>"
	go func() {
		_ = server.WriteText([]byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.org' id='s1' version='1.0' xml:lang='en'/>"))
		_ = server.WriteText([]byte("<stream:features xmlns:stream='http://etherx.jabber.org/streams'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"))
		_ = server.Ping([]byte("hi"))
		// The stanza in three fragments.
		_, _ = w.Write(rawFrame(false, opText, []byte(stanza[:10]), false))
		_, _ = w.Write(rawFrame(false, opContinuation, []byte(stanza[10:40000]), false))
		_, _ = w.Write(rawFrame(true, opContinuation, []byte(stanza[40000:]), false))
		_ = server.WriteText([]byte("<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>"))
		_ = server.WriteClose(CloseNormal, "")
	}()
	all, err := io.ReadAll(sc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	want := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.org' id='s1' version='1.0' xml:lang='en'>" +
		"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>" +
		stanza + "</stream:stream>"
	if string(all) != want {
		t.Errorf("stream:\n%.400s\nwant\n%.400s", all, want)
	}
	// The ping was answered; the close was echoed.
	fs := readFrames(t, server.br, 2)
	if fs[0].op != opPong || string(fs[0].payload) != "hi" || fs[1].op != opClose {
		t.Errorf("answers: %+v", fs)
	}
	if err := sc.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestBadInput: each way a server can break the framing ends the stream
// with an error naming it, and the refused messages are counted.
func TestBadInput(t *testing.T) {
	open := []byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' from='example.org' id='s1' version='1.0'/>")
	for _, tc := range []struct {
		name    string
		send    func(server *Conn)
		want    error
		bad     int64
		closeOp int // the close code the client sends back, 0: none checked
	}{
		{"two elements in a message", func(s *Conn) { _ = s.WriteText([]byte("<a xmlns='x'/><b xmlns='x'/>")) }, ErrFraming, 1, CloseInvalidData},
		{"half an element", func(s *Conn) { _ = s.WriteText([]byte("<message><body>hi")) }, ErrFraming, 1, CloseInvalidData},
		{"not XML", func(s *Conn) { _ = s.WriteText([]byte("hello <")) }, ErrFraming, 1, CloseInvalidData},
		{"binary", func(s *Conn) { _, _ = s.NetConn().Write(rawFrame(true, opBinary, []byte("<a/>"), false)) }, ErrProtocol, 1, CloseInvalidData},
		{"masked server frame", func(s *Conn) { _, _ = s.NetConn().Write(rawFrame(true, opText, []byte("<a/>"), true)) }, ErrProtocol, 1, CloseProtocol},
		{"too large", func(s *Conn) { _ = s.WriteText([]byte("<a>" + strings.Repeat("x", 2<<20) + "</a>")) }, ErrTooLarge, 1, CloseTooBig},
		{"bad UTF-8", func(s *Conn) { _ = s.WriteText([]byte("<a>\xff</a>")) }, ErrProtocol, 1, CloseInvalidData},
		{"close frame without <close/>", func(s *Conn) { _ = s.WriteClose(CloseGoingAway, "shutting down") }, ErrClosedByPeer, 0, CloseGoingAway},
		{"connection dropped without close frame", func(s *Conn) { s.NetConn().Close() }, ErrClosedByPeer, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := pair(t)
			sc := NewStreamConn(client, StreamConfig{Client: true})
			_ = server.WriteText(open)
			tc.send(server)
			_, err := io.ReadAll(sc)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read: %v, want %v", err, tc.want)
			}
			if got := sc.Stats().BadMessages; got != tc.bad {
				t.Errorf("bad messages %d, want %d", got, tc.bad)
			}
			if tc.closeOp != 0 {
				fs := readFrames(t, server.br, 1)
				if fs[0].op != opClose || len(fs[0].payload) < 2 || int(binary.BigEndian.Uint16(fs[0].payload)) != tc.closeOp {
					t.Errorf("client answered %+v, want close %d", fs[0], tc.closeOp)
				}
			}
			_ = sc.Close()
		})
	}
}

// TestCloseWithoutStreamEnd: closing a StreamConn whose XMPP stream is
// still open drops the connection without a close frame (as a network
// failure would, so the server keeps a resumable session); after <close/>
// a close frame goes out.
func TestCloseWithoutStreamEnd(t *testing.T) {
	for _, ended := range []bool{false, true} {
		client, server := pair(t)
		sc := NewStreamConn(client, StreamConfig{Client: true})
		if ended {
			_, _ = io.WriteString(sc, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'></stream:stream>")
		}
		_ = sc.Close()
		var frames []string
		for {
			m, err := server.ReadMessage()
			if err != nil {
				var ce *CloseError
				if errors.As(err, &ce) {
					frames = append(frames, "close")
				}
				break
			}
			frames = append(frames, string(m))
		}
		got := strings.Join(frames, " ")
		want := ""
		if ended {
			want = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/> <close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/> close"
		}
		if got != want {
			t.Errorf("ended=%v: server saw %q, want %q", ended, got, want)
		}
	}
}

// TestReadDeadlineBetweenMessages: a read deadline that passes while no
// frame is coming is a timeout, and reading goes on afterwards.
func TestReadDeadlineBetweenMessages(t *testing.T) {
	client, server := pair(t)
	sc := NewStreamConn(client, StreamConfig{Client: true})
	_ = sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	var ne net.Error
	if _, err := sc.Read(make([]byte, 10)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read: %v, want a timeout", err)
	}
	_ = sc.SetReadDeadline(time.Time{})
	_ = server.WriteText([]byte("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' id='x'/>"))
	buf := make([]byte, 200)
	n, err := sc.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "<stream:stream ") {
		t.Fatalf("read after the timeout: %q %v", buf[:n], err)
	}
}

func TestStandalone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
			"<stream:features xmlns:stream='http://etherx.jabber.org/streams'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"},
		{"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
			"<stream:error xmlns:stream='http://etherx.jabber.org/streams'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"},
		{"<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", "<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"},
		{"<r xmlns='urn:xmpp:sm:3'/>", "<r xmlns='urn:xmpp:sm:3'/>"},
	} {
		a, b := net.Pipe()
		sc := NewStreamConn(NewConn(a, nil, false, 0), StreamConfig{})
		go func() {
			_, _ = io.WriteString(sc, "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='1'>"+tc.in)
		}()
		fs := readFrames(t, bufio.NewReader(b), 2, false)
		if got := string(fs[1].payload); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.in, got, tc.want)
		}
		a.Close()
		b.Close()
	}
}
