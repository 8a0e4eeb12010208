//go:build browser

// Package browser_test drives the web chat of examples/webchat in headless
// Chromium: against the embedded server with the bot running in-process, and
// against a real Prosody over cross-origin BOSH.
//
// Run it with:
//
//	go test -tags browser ./test/browser/ -run MiniServer -v
//	go test -tags browser ./test/browser/ -run Prosody -v   # needs scripts/peers/prosody.sh running
//
// Chromium must be installed (Debian: `apt-get install -y chromium`, which
// scripts/test does); a missing browser fails the tests. Set
// CRIER_WEBCHAT_SCREENSHOT to a file name to keep a screenshot of the page
// once the bot has answered.
package browser_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// stepTimeout bounds each wait for the page to reach a state; logging in
// over BOSH and a bot's reply take well under a second on loopback.
const stepTimeout = 20 * time.Second

// page is one browser tab with the web chat loaded, and what the tab wrote
// to its console (kept for failure reports).
type page struct {
	t   testing.TB
	ctx context.Context

	mu      sync.Mutex
	console []string
}

// findChromium returns the browser's path or fails the test with the way to
// install it.
func findChromium(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	t.Fatalf("browser tests need Chromium at %s: install it with `apt-get install -y chromium` "+
		"(scripts/test does this with scripts/peers/install.sh --with-chromium)", chromiumPath)
	return ""
}

// openPage starts a headless Chromium for the test, opens url in a tab and
// waits until the web chat's script has run. The browser stops when the test
// ends; if the test failed, a screenshot and the console output are kept and
// their location logged.
func openPage(t testing.TB, url string) *page {
	t.Helper()
	exe := findChromium(t)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 760),
	)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	p := &page{t: t, ctx: ctx}

	// The first Run starts the browser and lives as long as ctx, so it
	// carries no timeout; the start itself is bounded by a watchdog.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx, chromedp.Navigate("about:blank")) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting %s: %v", exe, err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("starting %s: no answer within 60s", exe)
	}
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, m.String())
			p.mu.Unlock()
		}
	}()
	// Registered after the browser's cleanup, so it runs before it.
	t.Cleanup(p.reportFailure)

	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("loading %s: %v", url, err)
	}
	p.waitFor(`typeof Strophe === 'object' && document.getElementById('status') !== null`,
		"the page and Strophe.js to load")
	return p
}

// reportFailure saves a screenshot and the console of a failed test in a
// directory that outlives the test (t.TempDir is removed when it ends).
func (p *page) reportFailure() {
	if !p.t.Failed() {
		return
	}
	dir, err := os.MkdirTemp("", "crier-browser-")
	if err != nil {
		p.t.Logf("no failure report: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		shot := filepath.Join(dir, "screenshot.png")
		if err := os.WriteFile(shot, png, 0o644); err == nil {
			p.t.Logf("screenshot of the page: %s", shot)
		}
	} else {
		p.t.Logf("no screenshot: %v", err)
	}
	p.mu.Lock()
	lines := strings.Join(p.console, "\n")
	p.mu.Unlock()
	cons := filepath.Join(dir, "console.txt")
	if err := os.WriteFile(cons, []byte(lines), 0o644); err == nil {
		p.t.Logf("browser console: %s", cons)
	}
}

// state describes the page for failure messages: the status line, the
// room line and the last messages.
func (p *page) state() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`
		'status: ' + document.getElementById('status').dataset.state + ' (' +
		document.getElementById('status').textContent + ')\nroom: ' +
		document.getElementById('room-state').textContent + '\nmessages:\n' +
		Array.from(document.querySelectorAll('#messages li')).slice(-15)
			.map(li => '  [' + li.className + '] ' + li.textContent).join('\n')`))
	if err != nil {
		return "page state unavailable: " + err.Error()
	}
	return s
}

// waitFor waits until the JavaScript expression is true in the page, and
// fails the test with the page's state if it is not within stepTimeout.
func (p *page) waitFor(expr, what string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout+5*time.Second)
	defer cancel()
	var err error
	for {
		_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(stepTimeout)))
		// The page's JavaScript context can be replaced under the poll
		// while a navigation commits (seen on a loaded machine): poll the
		// new one.
		if err == nil || !strings.Contains(err.Error(), "Cannot find context with specified id") || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("waiting for %s: %v\n%s", what, err, p.state())
	}
}

// eval evaluates a JavaScript expression and decodes its value.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// do runs page actions, failing the test on error.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v\n%s", what, err, p.state())
	}
}

// chromedpClick clicks the element that the CSS selector finds.
func chromedpClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel))
}

// fill replaces the value of an input field.
func (p *page) fill(id, value string) {
	p.t.Helper()
	p.do("filling #"+id, chromedp.SetValue(chromedp.CSS("#"+id), value))
}

// login fills the account form, presses Connect and waits for the session.
func (p *page) login(jid, password, boshURL string) {
	p.t.Helper()
	p.fill("jid", jid)
	p.fill("password", password)
	if boshURL != "" {
		p.fill("bosh-url", boshURL)
	}
	p.do("pressing Connect", chromedp.Click(chromedp.CSS("#connect")))
	p.waitFor(`document.getElementById('status').dataset.state === 'connected'`, "the BOSH login of "+jid)
}

// join fills the room form, presses Join and waits until the room confirms
// the page's presence.
func (p *page) join(room, nick string) {
	p.t.Helper()
	p.fill("room", room)
	p.fill("nick", nick)
	p.do("pressing Join", chromedp.Click(chromedp.CSS("#join")))
	p.waitFor(`document.getElementById('room-state').dataset.state === 'in'`, "joining "+room)
}

// send writes body in the send box, addressed to "room" or "bot", and
// presses Send.
func (p *page) send(to, body string) {
	p.t.Helper()
	p.do("sending "+strconv.Quote(body),
		chromedp.SetValue(chromedp.CSS("#send-to"), to),
		chromedp.SetValue(chromedp.CSS("#message"), body),
		chromedp.Click(chromedp.CSS("#send")),
	)
}

// countLines returns the number of message lines that match the CSS
// selector sel (within #messages), have a .msg-body equal to body and, when
// from is not empty, a .msg-from equal to from.
func countLines(p *page, sel, from, body string) int {
	p.t.Helper()
	return eval[int](p, lineQuery(sel, from, body)+".length")
}

// waitLine waits until at least n message lines match (see countLines).
func (p *page) waitLine(n int, sel, from, body string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%s.length >= %d", lineQuery(sel, from, body), n),
		fmt.Sprintf("%d line(s) %s from %q saying %q", n, sel, from, body))
}

// lineQuery is a JavaScript expression for the array of matching lines.
func lineQuery(sel, from, body string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).filter(li => {
		const b = li.querySelector('.msg-body'), f = li.querySelector('.msg-from');
		return b !== null && b.textContent === %s && (%s === '' || (f !== null && f.textContent === %s));
	})`, js("#messages "+sel), js(body), js(from), js(from))
}

// js returns s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// screenshot saves a PNG of the page to path.
func (p *page) screenshot(path string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	p.t.Logf("screenshot of the page: %s", path)
}
