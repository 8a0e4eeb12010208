package bot

import (
	"context"
	"net"
	"reflect"
	"slices"
	"testing"
	"time"

	"crier/internal/config"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
	"crier/transport/bosh"
)

// BenchmarkTCPvsBOSH measures the reply path with the bot connected over
// TCP and over BOSH to the same mini server, side by side in one run (with
// -count the two alternate). A client on TCP keeps benchInFlight "!ping"
// unanswered; one iteration is one reply received. Reported: replies/s,
// the round trip of each ping (p50 and p99, in ms, 16 in flight included)
// and, over BOSH, the bot's HTTP requests per stanza (requests divided by
// the stanzas it sent and received while measuring).
func BenchmarkTCPvsBOSH(b *testing.B) {
	for _, typ := range []string{"chat", "groupchat"} {
		for _, tr := range []string{config.TransportTCP, config.TransportBOSH} {
			b.Run(typ+"/"+tr, func(b *testing.B) {
				srv := startMini(b, miniserver.Config{HTTPAddr: "127.0.0.1:0"})
				cfg := benchConfig(b, srv.Addr())
				if tr == config.TransportBOSH {
					cfg.XMPP.Transport = config.TransportBOSH
					cfg.XMPP.BOSHURL = srv.BOSHURL()
				}
				bt := benchBot(b, srv, cfg)
				benchRoundTrips(b, srv, bt, typ, tr == config.TransportBOSH)
			})
		}
	}
}

// benchRoundTrips drives one measurement: benchInFlight pings in flight,
// one reply per iteration, the round trip of each one recorded (replies
// come in order, so each pong answers the oldest ping still unanswered).
func benchRoundTrips(b *testing.B, srv *miniserver.Server, bt *Bot, typ string, overBOSH bool) {
	alice, to := benchClient(b, srv, typ)

	ctx, cancel := context.WithTimeout(context.Background(), benchLimit)
	defer cancel()
	var (
		sentAt []time.Time // send times of the unanswered pings, oldest first
		rtts   []time.Duration
		got    int
	)
	send := func() {
		sentAt = append(sentAt, time.Now())
		if err := alice.SendMessage(to, typ, "!ping"); err != nil {
			b.Fatalf("send: %v", err)
		}
	}
	next := func(record bool) {
		for {
			s, err := alice.Wait(ctx, 0, benchWait, func(s xmpptest.Stanza) bool { return s.Name == "message" })
			if err != nil {
				b.Fatalf("after %d replies, %d unanswered: %v", got, len(sentAt), err)
			}
			if s.Body != "pong alice" {
				continue // the client's own groupchat echo
			}
			got++
			if record {
				rtts = append(rtts, time.Since(sentAt[0]))
			}
			sentAt = sentAt[1:]
			return
		}
	}

	for range benchInFlight {
		send()
	}
	var before bosh.Stats
	if overBOSH {
		before = botBOSHStats(b, bt)
	}
	for b.Loop() {
		next(true)
		send()
	}
	elapsed := b.Elapsed()
	var after bosh.Stats
	if overBOSH {
		after = botBOSHStats(b, bt)
	}
	for len(sentAt) > 0 {
		next(false)
	}

	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "replies/s")
	slices.Sort(rtts)
	b.ReportMetric(msAt(rtts, 0.50), "p50-ms")
	b.ReportMetric(msAt(rtts, 0.99), "p99-ms")
	if overBOSH {
		reqs := after.Requests - before.Requests
		stanzas := (after.StanzasSent - before.StanzasSent) + (after.StanzasReceived - before.StanzasReceived)
		if stanzas < int64(2*b.N) {
			b.Fatalf("the bot's BOSH conn counted %d stanzas for %d replies: not the session that answered", stanzas, b.N)
		}
		b.ReportMetric(float64(reqs)/float64(stanzas), "http-req/stanza")
	}
}

// msAt returns quantile q of the sorted durations d, in milliseconds.
func msAt(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := min(int(q*float64(len(d))), len(d)-1)
	return float64(d[i]) / float64(time.Millisecond)
}

// botBOSHStats returns the counters of the bot's current BOSH session.
func botBOSHStats(tb testing.TB, bt *Bot) bosh.Stats {
	tb.Helper()
	bt.connMu.Lock()
	conn := bt.conn
	bt.connMu.Unlock()
	if conn == nil {
		tb.Fatal("the bot has no connection")
	}
	nc := conn.Session.Conn()
	if st, ok := bosh.StatsOf(nc); ok {
		return st
	}
	// transport's tap wraps the BOSH conn in an unexported type that
	// embeds it and has no NetConn method yet: find the embedded conn.
	if inner, ok := embeddedConn(nc); ok {
		if st, ok := bosh.StatsOf(inner); ok {
			return st
		}
	}
	tb.Fatalf("the bot's connection (%T) is not over BOSH", nc)
	return bosh.Stats{}
}

// embeddedConn returns the net.Conn embedded in the struct c points to.
func embeddedConn(c net.Conn) (net.Conn, bool) {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	f := v.Elem().FieldByName("Conn")
	if !f.IsValid() || !f.CanInterface() {
		return nil, false
	}
	inner, ok := f.Interface().(net.Conn)
	return inner, ok && inner != nil
}
