//go:build browser

package browser_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"crier/bot"
	"crier/examples/webchat"
	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
)

const lobby = "lobby@conference.localhost"

// demo is the embedded server serving the web chat, with the bot logged in
// and in the lobby.
type demo struct {
	srv *miniserver.Server
	bot *bot.Bot
}

// startDemo starts the embedded server and the bot in-process, as
// `crier run` does in demo mode, and waits until the bot is in the lobby.
func startDemo(t *testing.T) *demo {
	t.Helper()
	logs := &crierproc.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server and bot log:\n%s", logs.String())
		}
	})

	srv, err := miniserver.Start(context.Background(), miniserver.Config{
		Domain:   "localhost",
		Addr:     "127.0.0.1:0",
		HTTPAddr: "127.0.0.1:0",
		Web:      webchat.FS,
		Accounts: map[string]string{"crier@localhost": "crierpw", "alice@localhost": "alice"},
		Logger:   log.With("side", "server"),
	})
	if err != nil {
		t.Fatalf("miniserver.Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })

	cfg, err := config.LoadBytes("t.toml", []byte(fmt.Sprintf(`
[xmpp]
jid = "crier@localhost"
password = "crierpw"
address = %q
keepalive = "2s"
keepalive_timeout = "2s"
connect_timeout = "5s"

[[rooms]]
jid = %q
nick = "crier"

[[rules]]
name = "ping"
match = "^!ping$"
reply = "pong {{.Nick}}"

[[rules]]
name = "echo"
match = "^!echo (.+)$"
reply = "{{index .Match 1}}"
`, srv.Addr(), lobby)))
	if err != nil {
		t.Fatalf("bot config: %v", err)
	}
	b, err := bot.New(cfg, bot.Options{
		Logger:     log.With("side", "bot"),
		RootCAs:    srv.CertPool(),
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bot.Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("the bot did not stop within 10s")
		}
	})
	d := &demo{srv: srv, bot: b}
	d.waitBotReady(t)
	return d
}

// waitBotReady waits until the bot is bound and in its rooms.
func (d *demo) waitBotReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for time.Now().Before(deadline) {
		if ok, _ := d.bot.Ready(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, lines := d.bot.Ready()
	t.Fatalf("the bot is not ready after %v: %s", stepTimeout, strings.Join(lines, "; "))
}

// TestMiniServerWebChat loads the web chat from the embedded server, logs
// in as alice over BOSH, talks to the bot in the lobby and one-to-one,
// receives a headline, checks that markup in a body stays text, and
// survives the server dropping every connection.
func TestMiniServerWebChat(t *testing.T) {
	d := startDemo(t)
	url := "http://" + d.srv.HTTPAddr() + "/?debug=1"
	p := openPage(t, url)

	// The page defaults to the BOSH endpoint of the server that served it.
	if got, want := eval[string](p, `document.getElementById('bosh-url').value`), "http://"+d.srv.HTTPAddr()+"/http-bind"; got != want {
		t.Errorf("default BOSH URL = %q, want %q", got, want)
	}
	if got := eval[string](p, `document.getElementById('jid').value + ' / ' + document.getElementById('password').value`); got != "alice@localhost / alice" {
		t.Errorf("prefilled account = %q, want the demo account alice@localhost / alice", got)
	}

	p.login("alice@localhost", "alice", "")
	if online := d.srv.Online("alice@localhost"); len(online) != 1 {
		t.Fatalf("server sees alice's sessions %v after the page logged in, want one", online)
	}
	p.join(lobby, "alice")
	p.waitFor(`document.getElementById('room-state').textContent.includes('crier')`, "the bot in the room's occupant list")

	// The room echoes alice's message; the bot answers it.
	p.send("room", "!ping")
	p.waitLine(1, "li.msg-groupchat.msg-self", "alice", "!ping")
	p.waitLine(1, "li.msg-groupchat.msg-bot", "crier", "pong alice")
	if n := countLines(p, "li.msg-groupchat:not(.msg-bot)", "crier", "pong alice"); n != 0 {
		t.Errorf("%d bot replies lack the bot styling", n)
	}
	if n := countLines(p, "li.msg-bot", "alice", "!ping"); n != 0 {
		t.Errorf("alice's own message has the bot styling")
	}
	// The bot's reply must look different from a person's message.
	botBg := eval[string](p, `getComputedStyle(document.querySelector('#messages li.msg-bot')).backgroundColor`)
	selfBg := eval[string](p, `getComputedStyle(document.querySelector('#messages li.msg-self')).backgroundColor`)
	if botBg == selfBg {
		t.Errorf("bot and user messages share the background %s", botBg)
	}
	if path := os.Getenv("CRIER_WEBCHAT_SCREENSHOT"); path != "" {
		defer p.screenshot(path) // after the rest of the conversation
	}

	// Markup in a body is shown as text and creates no element.
	eval[bool](p, `window.alerted = false; window.alert = () => { window.alerted = true; }; true`)
	const evil = `<img src=x onerror=alert(1)>`
	p.send("room", evil)
	p.waitLine(1, "li.msg-groupchat.msg-self", "alice", evil)
	if n := eval[int](p, `document.querySelectorAll('#messages img, #messages script, #messages [onerror]').length`); n != 0 {
		t.Errorf("a message body created %d element(s) in the message list", n)
	}
	if eval[bool](p, `window.alerted`) {
		t.Errorf("a message body ran script")
	}

	// One-to-one chat with the bot.
	p.send("bot", "!ping")
	p.waitLine(1, "li.msg-chat.msg-self", "to crier", "!ping")
	p.waitLine(1, "li.msg-chat.msg-bot", "crier", "pong alice")

	// A headline from the bot's account: subject and body, styled apart.
	news := xmpptest.Dial(t, xmpptest.Options{Addr: d.srv.Addr(), JID: "crier@localhost", Password: "crierpw",
		Resource: "news", RootCAs: d.srv.CertPool(), Timeout: 5 * time.Second})
	if err := news.Send(context.Background(), `<message to='alice@localhost' type='headline'>`+
		`<subject>Disk almost full</subject><body>/var is at 95% &amp; rising</body></message>`); err != nil {
		t.Fatalf("sending a headline: %v", err)
	}
	p.waitLine(1, "li.msg-headline.msg-bot", "crier", "/var is at 95% & rising")
	if got := eval[string](p, `document.querySelector('#messages li.msg-headline .msg-subject').textContent`); got != "Disk almost full" {
		t.Errorf("headline subject = %q, want %q", got, "Disk almost full")
	}
	hlBg := eval[string](p, `getComputedStyle(document.querySelector('#messages li.msg-headline')).backgroundColor`)
	if hlBg == botBg || hlBg == selfBg {
		t.Errorf("headlines share the background %s with other messages", hlBg)
	}
	_ = news.Close()

	// The server drops every connection: the page reconnects by itself,
	// rejoins the room and does not show the replayed history twice.
	d.srv.DropAll()
	p.waitFor(`['reconnecting', 'connecting'].includes(document.getElementById('status').dataset.state)`,
		"the page to notice the dropped session")
	p.waitFor(`document.getElementById('status').dataset.state === 'connected'`, "the page to reconnect")
	p.waitFor(`document.getElementById('room-state').dataset.state === 'in'`, "the page to rejoin the room")
	d.waitBotReady(t)
	p.waitFor(`document.getElementById('room-state').textContent.includes('crier')`, "the bot back in the room")
	p.send("room", "!echo back again")
	p.waitLine(1, "li.msg-groupchat.msg-bot:not(.msg-delayed)", "crier", "back again")
	if n := countLines(p, "li.msg-groupchat.msg-bot", "crier", "pong alice"); n != 1 {
		t.Errorf("after the rejoin the bot's first reply is shown %d times, want once", n)
	}
}
