package bot

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"

	"crier/internal/config"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
	"crier/rules"
)

// benchInFlight is how many pings the client of BenchmarkReplyPath keeps
// unanswered at any time.
const benchInFlight = 16

// benchWait bounds the wait for any single reply, and benchLimit a whole
// benchmark run, so that a lost reply fails the run instead of hanging it.
const (
	benchWait  = 10 * time.Second
	benchLimit = 5 * time.Minute
)

// BenchmarkReplyPath measures the whole reply path over the network: a
// client sends "!ping" to the bot through the in-process mini server, the
// bot matches the rule and its reply travels back through the server. The
// client keeps benchInFlight pings unanswered and one iteration is one reply
// received. Allocations include the mini server and the client, which run in
// the same process; BenchmarkHandleMessage isolates the bot's share.
func BenchmarkReplyPath(b *testing.B) {
	for _, typ := range []string{"chat", "groupchat"} {
		b.Run(typ, func(b *testing.B) {
			srv := startServer(b)
			benchBot(b, srv, benchConfig(b, srv.Addr()))
			alice, to := benchClient(b, srv, typ)

			ctx, cancel := context.WithTimeout(context.Background(), benchLimit)
			defer cancel()
			sent := 0
			send := func() {
				if err := alice.SendMessage(to, typ, "!ping"); err != nil {
					b.Fatalf("send: %v", err)
				}
				sent++
			}
			got := 0
			// next waits for the next pong; the client's own groupchat
			// echoes are taken from its buffer and skipped.
			next := func() {
				for {
					s, err := alice.Wait(ctx, 0, benchWait, func(s xmpptest.Stanza) bool { return s.Name == "message" })
					if err != nil {
						b.Fatalf("after %d replies of %d pings: %v", got, sent, err)
					}
					if s.Body == "pong alice" {
						got++
						return
					}
				}
			}

			for range benchInFlight {
				send()
			}
			b.ReportAllocs()
			for b.Loop() {
				next()
				send()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "replies/s")
			for got < sent {
				next()
			}
		})
	}
}

// BenchmarkHandleMessage measures the bot's own part of the reply path,
// without a network: the handler decodes a message element, the rules
// match it and the reply is queued, then the outbox renders it for a sender
// that discards it. One iteration is one message in and one reply out, so
// allocs/op is the bot's allocations per message.
func BenchmarkHandleMessage(b *testing.B) {
	cases := []struct {
		name, raw string
	}{
		{"chat", `<message xmlns='jabber:client' from='alice@localhost/phone' to='crier@localhost/crier' type='chat' id='m1'><body>!ping</body></message>`},
		{"groupchat", `<message xmlns='jabber:client' from='` + room + `/alice' to='crier@localhost/crier' type='groupchat' id='m1'><body>!ping</body></message>`},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			cfg := benchConfig(b, "127.0.0.1:1")
			bt, err := New(cfg, Options{})
			if err != nil {
				b.Fatal(err)
			}
			self := jid.MustParse("crier@localhost/crier")
			h := bt.newHandler(self)
			snk := &countingSender{}
			bt.out.Attach(snk, nil)
			bt.out.SetRoomJoined(room, true)
			start, rest := tokensOf(b, c.raw)
			in := &replayStream{}
			ctx := context.Background()
			// The chain runs here, on this goroutine, as its dispatch
			// goroutine would; then the outbox writes the reply.
			drain := func() {
				for {
					select {
					case it := <-bt.chain.q:
						bt.chain.handle(ctx, it, 0)
						continue
					default:
					}
					break
				}
				bt.out.Drain(ctx)
			}
			b.ReportAllocs()
			for b.Loop() {
				in.reset(rest)
				if err := h.HandleXMPP(in, &start); err != nil {
					b.Fatal(err)
				}
				drain()
			}
			if n := snk.n.Load(); n != int64(b.N) {
				b.Fatalf("%d replies for %d messages", n, b.N)
			}
		})
	}
}

// benchConfig is the test config with the per-sender loop breaker off and
// crier's default keepalive: a benchmark has one sender sending as fast as
// the bot answers.
func benchConfig(tb testing.TB, addr string) *config.Config {
	tb.Helper()
	cfg := loadConfig(tb, fmt.Sprintf("address = %q", addr), "")
	cfg.Limits.SenderReplies = rules.Rate{}
	return cfg
}

// benchBot runs a bot with cfg against srv until the benchmark ends, with
// its log discarded so that logging is not measured, and waits until it is
// in its room.
func benchBot(tb testing.TB, srv *miniserver.Server, cfg *config.Config) *Bot {
	tb.Helper()
	h := startBot(tb, srv, cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	h.waitReady(10 * time.Second)
	return h.bot
}

// benchClient logs alice in to srv and returns her client and where her
// pings of type typ ("chat" or "groupchat") go: the bot, or the room she
// joined. One ping has been answered already, so that the path is warm.
func benchClient(b *testing.B, srv *miniserver.Server, typ string) (alice *xmpptest.Client, to string) {
	b.Helper()
	alice = xmpptest.Dial(b, xmpptest.Options{Addr: srv.Addr(), JID: "alice@localhost", Password: "alicepw", RootCAs: srv.CertPool(), Timeout: benchWait})
	to = "crier@localhost/crier"
	if typ == "groupchat" {
		if err := alice.Join(room, "alice"); err != nil {
			b.Fatal(err)
		}
		to = room
	}
	// Warm the path up and make sure it answers before measuring.
	if err := alice.SendMessage(to, typ, "!ping"); err != nil {
		b.Fatal(err)
	}
	alice.Expect(b, benchWait, func(s xmpptest.Stanza) bool { return s.Name == "message" && s.Body == "pong alice" })
	alice.Drain()
	return alice, to
}

// tokensOf parses one element and returns its start and the tokens after
// it, up to and including its end, copied so they can be replayed.
func tokensOf(tb testing.TB, raw string) (xml.StartElement, []xml.Token) {
	tb.Helper()
	d := xml.NewDecoder(strings.NewReader(raw))
	var toks []xml.Token
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatalf("parse %s: %v", raw, err)
		}
		toks = append(toks, xml.CopyToken(tok))
	}
	start, ok := toks[0].(xml.StartElement)
	if !ok {
		tb.Fatalf("not an element: %s", raw)
	}
	return start, toks[1:]
}

// replayStream hands the handler a parsed element again and again, as
// mellium's session does with the element it read: the tokens after the
// start element, then io.EOF. What the handler encodes is discarded.
type replayStream struct {
	toks []xml.Token
	i    int
}

func (r *replayStream) reset(toks []xml.Token) { r.toks, r.i = toks, 0 }

// Token returns the next token of the element.
func (r *replayStream) Token() (xml.Token, error) {
	if r.i >= len(r.toks) {
		return nil, io.EOF
	}
	t := r.toks[r.i]
	r.i++
	return t, nil
}

// EncodeToken discards t.
func (r *replayStream) EncodeToken(xml.Token) error { return nil }

// EncodeElement discards v.
func (r *replayStream) EncodeElement(any, xml.StartElement) error { return nil }

// Encode discards v.
func (r *replayStream) Encode(any) error { return nil }

// countingSender renders each stanza the outbox sends, as a session would,
// and counts them.
type countingSender struct {
	n atomic.Int64
}

// Send reads the whole stanza and counts it.
func (c *countingSender) Send(_ context.Context, r xml.TokenReader) error {
	if _, err := xmlstream.Copy(discardEncoder{}, r); err != nil {
		return err
	}
	c.n.Add(1)
	return nil
}

// discardEncoder is a token writer that keeps nothing.
type discardEncoder struct{}

// EncodeToken discards t.
func (discardEncoder) EncodeToken(xml.Token) error { return nil }

// Flush does nothing.
func (discardEncoder) Flush() error { return nil }

var _ xmlstream.TokenReadEncoder = (*replayStream)(nil)
