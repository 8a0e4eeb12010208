//go:build browser

package browser_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"crier/bot"
	"crier/examples/webchat"
	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/peers"
)

// roundTripJS is a Strophe.js client of its own in the page: it logs in,
// joins a room and times "send !ping, receive the bot's pong" with
// performance.now(). Each ping follows a pause (the page's long poll is held
// by the server, as when a person types) and is flushed, so Strophe's 100 ms
// send timer is not part of the figure: what is measured is the server side,
// its BOSH connection manager included.
const roundTripJS = `
window.rt = (function () {
  const st = { conn: null, want: null };
  function onMessage(m) {
    const b = m.getElementsByTagName('body')[0];
    if (st.want && b && b.textContent === st.want.body) {
      const w = st.want;
      st.want = null;
      w.resolve(performance.now() - w.t0);
    }
    return true;
  }
  function connect(url, jid, pass, room, nick) {
    return new Promise((resolve, reject) => {
      const c = new Strophe.Connection(url);
      st.conn = c;
      c.connect(jid, pass, (status, cond) => {
        const S = Strophe.Status;
        if (status === S.CONNECTED) {
          c.addHandler(onMessage, null, 'message', 'groupchat');
          c.addHandler((p) => {
            if (p.getAttribute('from') === room + '/' + nick && !p.getAttribute('type')) {
              resolve(true);
              return false;
            }
            return true;
          }, null, 'presence');
          c.send($pres().tree());
          c.send($pres({ to: room + '/' + nick }).c('x', { xmlns: 'http://jabber.org/protocol/muc' })
            .c('history', { maxstanzas: '0' }).tree());
          c.flush();
        } else if (status === S.CONNFAIL || status === S.AUTHFAIL || status === S.DISCONNECTED) {
          reject(new Error('connection status ' + status + ' ' + (cond || '')));
        }
      });
    });
  }
  function ping(room, body, want) {
    // As a person typing does: after a pause, with Strophe's long poll
    // held by the server (Strophe sends one on its 100 ms idle tick when no
    // request is open).
    return new Promise((r) => setTimeout(r, 250)).then(() => send(room, body, want));
  }
  function send(room, body, want) {
    return new Promise((resolve, reject) => {
      const w = { body: want, resolve: resolve, t0: performance.now() };
      st.want = w;
      st.conn.send($msg({ to: room, type: 'groupchat' }).c('body').t(body).tree());
      st.conn.flush();
      setTimeout(() => { if (st.want === w) { st.want = null; reject(new Error('no answer within 10s')); } }, 10000);
    });
  }
  return { connect: connect, ping: ping };
})();
true`

// rtPage is a page with roundTripJS logged in and in a room.
type rtPage struct {
	p    *page
	room string
}

// openRoundTrip loads url, installs roundTripJS and logs in.
func openRoundTrip(tb testing.TB, url, boshURL, jid, pass, room string) *rtPage {
	tb.Helper()
	p := openPage(tb, url)
	eval[bool](p, roundTripJS)
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf("rt.connect(%s, %s, %s, %s, 'alice')",
		js(boshURL), js(jid), js(pass), js(room)), chromedp.EvalAwaitPromise)); err != nil {
		tb.Fatalf("Strophe.js login and join at %s: %v", boshURL, err)
	}
	return &rtPage{p: p, room: room}
}

// ping times one !ping → "pong alice" round trip, in milliseconds.
func (r *rtPage) ping(tb testing.TB) float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(r.p.ctx, stepTimeout)
	defer cancel()
	ms, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fmt.Sprintf("rt.ping(%s, '!ping', 'pong alice')", js(r.room)),
		chromedp.EvalAwaitPromise))
	if err != nil {
		tb.Fatalf("!ping in %s: %v", r.room, err)
	}
	return ms
}

// runBot runs the bot in-process over TCP with the ping rule in room, and
// waits until it is in the room.
func runBot(tb testing.TB, addr, jid, password, room string, roots *x509.CertPool) {
	tb.Helper()
	logs := &crierproc.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("bot log:\n%s", logs.String())
		}
	})
	cfg, err := config.LoadBytes("bot.toml", []byte(fmt.Sprintf(`
[xmpp]
jid = %q
password = %q
address = %q
connect_timeout = "5s"

[limits]
sender_replies = "0"

[[rooms]]
jid = %q
nick = "crier"

[[rules]]
name = "ping"
match = "^!ping$"
reply = "pong {{.Nick}}"
`, jid, password, addr, room)))
	if err != nil {
		tb.Fatalf("bot config: %v", err)
	}
	b, err := bot.New(cfg, bot.Options{Logger: log, RootCAs: roots, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		tb.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Errorf("the bot did not stop within 10s")
		}
	})
	deadline := time.Now().Add(stepTimeout)
	for time.Now().Before(deadline) {
		if ok, _ := b.Ready(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, lines := b.Ready()
	tb.Fatalf("the bot is not ready: %s", strings.Join(lines, "; "))
}

// BenchmarkWebChatRoundTrip measures, in one run, Strophe.js in Chromium
// sending !ping into a room and receiving the bot's answer: through the mini
// server's BOSH connection manager and through Prosody's BOSH, the bot
// answering over TCP in both. Each iteration does one round trip on each,
// interleaved; the medians are reported as mini-median-ms and
// prosody-median-ms. It needs Prosody running (scripts/peers/prosody.sh):
//
//	go test -tags browser -run '^$' -bench WebChatRoundTrip -benchtime 200x ./test/browser/
func BenchmarkWebChatRoundTrip(b *testing.B) {
	// Mini server, as in demo mode.
	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain: "localhost", Addr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Web: webchat.FS,
		Accounts: map[string]string{"crier@localhost": "crierpw", "alice@localhost": "alice"},
	})
	if err != nil {
		b.Fatalf("miniserver.Start: %v", err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	miniRoom := "rt@conference.localhost"
	runBot(b, srv.Addr(), "crier@localhost", "crierpw", miniRoom, srv.CertPool())
	mini := openRoundTrip(b, "http://"+srv.HTTPAddr()+"/", srv.BOSHURL(), "alice@localhost", "alice", miniRoom)

	// Prosody, the page served from an origin of its own.
	p := peers.Get(b, "prosody")
	crier, alice := p.Account(b, "crier"), p.Account(b, "alice")
	web := httptest.NewServer(http.FileServer(http.FS(webchat.FS)))
	b.Cleanup(web.Close)
	pRoom := fmt.Sprintf("rt%d@%s", time.Now().UnixNano(), p.MUC)
	runBot(b, p.C2S, crier.JID, crier.Password, pRoom, p.CertPool())
	pros := openRoundTrip(b, web.URL+"/", p.BOSHURL, alice.JID, alice.Password, pRoom)

	// Warm up both paths.
	for range 3 {
		mini.ping(b)
		pros.ping(b)
	}
	var m, q []float64
	for b.Loop() {
		m = append(m, mini.ping(b))
		q = append(q, pros.ping(b))
	}
	mm, qm := median(m), median(q)
	b.ReportMetric(mm, "mini-median-ms")
	b.ReportMetric(qm, "prosody-median-ms")
	b.ReportMetric(mm-qm, "diff-ms")
	b.Logf("%d round trips each: mini server median %.2f ms (p90 %.2f), Prosody median %.2f ms (p90 %.2f)",
		len(m), mm, quantile(m, 0.9), qm, quantile(q, 0.9))
}

func median(v []float64) float64 { return quantile(v, 0.5) }

// quantile returns the q-quantile of v (nearest rank).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}
