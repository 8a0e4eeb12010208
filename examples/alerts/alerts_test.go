// Package alerts_test runs the alerts example: exactly the config.toml
// beside it, on the crier binary, with the embedded XMPP and NATS servers
// it starts.
package alerts_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"crier/internal/crierproc"
	"crier/internal/xmpptest"
)

const (
	bot  = "alerts@localhost"
	room = "ops@conference.localhost"
	wait = 15 * time.Second
)

// example is the parts of config.toml the test needs to reach the bot.
type example struct {
	NATS struct {
		URL string `toml:"url"`
	} `toml:"nats"`
	Webhooks []struct {
		Path  string `toml:"path"`
		Token string `toml:"token"`
	} `toml:"webhooks"`
}

// firing is an Alertmanager webhook notification, payload version 4.
const firing = `{
  "version": "4",
  "groupKey": "{}:{alertname=\"DiskFull\"}",
  "truncatedAlerts": 0,
  "status": "firing",
  "receiver": "crier",
  "groupLabels": {"alertname": "DiskFull"},
  "commonLabels": {"alertname": "DiskFull", "severity": "critical"},
  "commonAnnotations": {},
  "externalURL": "http://127.0.0.1:9093",
  "alerts": [{
    "status": "firing",
    "labels": {"alertname": "DiskFull", "instance": "db1", "severity": "critical"},
    "annotations": {"summary": "/var is 95% full on db1"},
    "startsAt": "2026-01-02T03:04:05Z",
    "endsAt": "0001-01-01T00:00:00Z",
    "generatorURL": "http://127.0.0.1:9090/graph",
    "fingerprint": "d1sk"
  }]
}`

func TestAlerts(t *testing.T) {
	var ex example
	run := crierproc.StartExample(t, "config.toml", &ex)
	if len(ex.Webhooks) != 1 || ex.Webhooks[0].Token == "" {
		t.Fatalf("config.toml: want one webhook with a token, have %+v", ex.Webhooks)
	}
	hook := "http://" + run.HTTP + ex.Webhooks[0].Path
	d, pool := run.Daemon, run.Pool
	path := d.Path()
	oncall := xmpptest.Dial(t, xmpptest.Options{Addr: run.Addr, JID: "oncall@localhost", Password: "oncall", RootCAs: pool})
	if err := oncall.Join(room, "oncall"); err != nil {
		t.Fatal(err)
	}
	toUser := func(typ, sub string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.Type == typ && strings.HasPrefix(s.From, bot+"/") && strings.Contains(s.Body, sub)
		}
	}
	toRoom := func(sub string) func(xmpptest.Stanza) bool {
		return func(s xmpptest.Stanza) bool {
			return s.Name == "message" && s.Type == "groupchat" && s.From == room+"/alerts" && strings.Contains(s.Body, sub)
		}
	}

	// Alertmanager's webhook: without the token 401, with it 200 once
	// delivered, and the headline reaches the user and the room.
	if code := post(t, hook, "", firing); code != http.StatusUnauthorized {
		t.Errorf("POST without the token: %d, want 401", code)
	}
	if code := post(t, hook, "wrong", firing); code != http.StatusUnauthorized {
		t.Errorf("POST with a wrong token: %d, want 401", code)
	}
	if code := post(t, hook, ex.Webhooks[0].Token, firing); code != http.StatusOK {
		t.Fatalf("POST with the token: %d, want 200", code)
	}
	headline := "[FIRING:1] DiskFull (critical)"
	got := oncall.Expect(t, wait, toUser("headline", headline))
	if !strings.Contains(got.Body, "/var is 95% full on db1") {
		t.Errorf("the alert's summary is missing:\n%s", got.Body)
	}
	oncall.Expect(t, wait, toRoom(headline))
	if err := oncall.SendMessage(bot, "chat", "!alerts"); err != nil {
		t.Fatal(err)
	}
	oncall.Expect(t, wait, toUser("chat", "DiskFull"))

	// NATS: a JSON event on alerts.x reaches the user and the room.
	nc, err := nats.Connect(ex.NATS.URL, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	event := `{"title":"Backup failed","body":"db2 nightly","severity":"warning","id":"backup-1"}`
	if err := nc.Publish("alerts.x", []byte(event)); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	oncall.Expect(t, wait, toUser("headline", "[WARNING] Backup failed: db2 nightly"))
	oncall.Expect(t, wait, toRoom("[WARNING] Backup failed: db2 nightly"))

	// crier send with the example's config, as a cron job would run it.
	cmd := exec.Command(crierproc.Binary(t), "send", "-c", path, "--to", "oncall@localhost", "nightly report: all green")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRIER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crier send -c %s: %v, want exit 0\n%s", path, err, out)
	}
	oncall.Expect(t, wait, toUser("chat", "nightly report: all green"))

	if n := d.ReadMetric(t, "crier_webhook_requests_total", "code", "401"); n != 2 {
		t.Errorf("crier_webhook_requests_total{code=\"401\"} = %v, want 2", n)
	}
	if n := d.ReadMetric(t, "crier_nats_relayed_total"); n < 2 {
		t.Errorf("crier_nats_relayed_total = %v, want at least 2", n)
	}
}

// post sends body to url with token as a bearer token (none when empty) and
// returns the status code.
func post(t *testing.T, url, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCheck runs `crier check` on the example as its README shows.
func TestCheck(t *testing.T) { crierproc.CheckExample(t, "config.toml") }
