//go:build peers

package peers_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/state"
	"crier/internal/xmpptest"
	"crier/plugins"
	"crier/plugins/webhooks"
)

type stateNamespace = state.Namespace

// Debian's prometheus-alertmanager package (scripts/peers/install.sh).
const (
	alertmanagerBin = "/usr/bin/prometheus-alertmanager"
	amtoolBin       = "/usr/bin/amtool"
)

// alertmanager is a private Alertmanager on loopback.
type alertmanager struct {
	url string
	dir string
	cmd *exec.Cmd
	log *crierproc.Buffer
}

// startAlertmanager runs Alertmanager with one route to a webhook receiver
// at hookURL (bearer token tok), short group timers and no cluster port,
// until the test ends.
func startAlertmanager(t *testing.T, hookURL, tok string) *alertmanager {
	t.Helper()
	for _, bin := range []string{alertmanagerBin, amtoolBin} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s is missing (apt-get install prometheus-alertmanager, or scripts/peers/install.sh): %v", bin, err)
		}
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: crier
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: crier
    webhook_configs:
      - url: %q
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: %q
`, hookURL, tok)
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := crierproc.FreePort(t)
	am := &alertmanager{url: "http://" + addr, dir: dir, log: &crierproc.Buffer{}}
	am.cmd = exec.Command(alertmanagerBin, "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.external-url="+am.url, "--cluster.listen-address=", "--log.level=debug")
	am.cmd.Stdout, am.cmd.Stderr = am.log, am.log
	if err := am.cmd.Start(); err != nil {
		t.Fatalf("start Alertmanager: %v", err)
	}
	t.Cleanup(func() {
		_ = am.cmd.Process.Kill()
		_ = am.cmd.Wait()
		if t.Failed() {
			t.Logf("Alertmanager log:\n%s", am.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(am.url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return am
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Alertmanager not ready at %s: %v\n%s", am.url, err, am.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// amtool runs amtool against am and returns its output.
func (am *alertmanager) amtool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, amtoolBin, append([]string{"--alertmanager.url=" + am.url}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// failedNotifications reads Alertmanager's count of failed webhook
// notifications.
func (am *alertmanager) failedNotifications(t *testing.T) float64 {
	t.Helper()
	resp, err := http.Get(am.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	v, err := crierproc.SumMetric(bufio.NewReader(resp.Body), "alertmanager_notifications_failed_total", "integration", "webhook")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// outageServer is a mini server that can go down and come back on the same
// address with the same certificate.
type outageServer struct {
	t    *testing.T
	addr string
	cert tls.Certificate
	ca   string
	srv  *miniserver.Server
}

func startOutageServer(t *testing.T) *outageServer {
	t.Helper()
	certPEM, keyPEM, err := miniserver.NewCertificate("localhost")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := &outageServer{t: t, addr: crierproc.FreePort(t), cert: cert, ca: crierproc.WriteFile(t, "ca.pem", certPEM)}
	s.up()
	t.Cleanup(s.down)
	return s
}

func (s *outageServer) up() {
	s.t.Helper()
	var err error
	for range 50 {
		s.srv, err = miniserver.Start(context.Background(), miniserver.Config{Domain: "localhost", Addr: s.addr,
			Accounts:    map[string]string{"crier@localhost": "crierpw", "alice@localhost": "alicepw", "bob@localhost": "bobpw"},
			Certificate: &s.cert, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("mini server on %s: %v", s.addr, err)
}

func (s *outageServer) down() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func (s *outageServer) user(name string) *xmpptest.Client {
	s.t.Helper()
	return xmpptest.Dial(s.t, xmpptest.Options{Addr: s.addr, JID: name + "@localhost", Password: name + "pw",
		RootCAs: s.srv.CertPool(), Timeout: 10 * time.Second})
}

// TestAlertmanager runs Debian's Alertmanager with a webhook receiver
// pointing at the crier binary (connected to the mini server), injects
// alerts with amtool and checks that firing and resolved notifications
// reach a user and a room; then that while the XMPP server is down
// Alertmanager gets 503s and the notification arrives once it is back.
func TestAlertmanager(t *testing.T) {
	s := startOutageServer(t)
	const room = "ops@conference.localhost"
	// chat, not headline: the user is offline for a moment during the
	// outage, and servers keep chat messages for offline users.
	tables := fmt.Sprintf(`
[[rooms]]
jid = %q
nick = "crier"

[[webhooks]]
path = "/hooks/alertmanager"
format = "alertmanager"
to = ["alice@localhost", %q]
type = "chat"
token = "peer-token"
retry_after = "1s"
`, room, room)
	d := crierproc.Run(t, crierproc.XMPP{JID: "crier@localhost", Password: "crierpw", Resource: "crier",
		Address: s.addr, CAFile: s.ca, Keepalive: "1s", KeepaliveTimeout: "2s"}, tables)
	d.WaitReady(t, 30*time.Second)
	am := startAlertmanager(t, "http://"+d.HTTPAddr()+"/hooks/alertmanager", "peer-token")

	alice := s.user("alice")
	bob := s.user("bob")
	if err := bob.Join(room, "bob"); err != nil {
		t.Fatal(err)
	}
	chat := func(want string) func(xmpptest.Stanza) bool {
		return func(st xmpptest.Stanza) bool {
			return st.Name == "message" && st.Type == "chat" && strings.HasPrefix(st.From, "crier@localhost") && strings.Contains(st.Body, want)
		}
	}
	inRoom := func(want string) func(xmpptest.Stanza) bool {
		return func(st xmpptest.Stanza) bool {
			return st.Name == "message" && st.Type == "groupchat" && st.From == room+"/crier" && strings.Contains(st.Body, want)
		}
	}

	t.Run("firing-and-resolved", func(t *testing.T) {
		am.amtool(t, "alert", "add", "alertname=PeerDiskFull", "severity=critical", "instance=db1",
			"--annotation=summary=/var is 97% full")
		got := alice.Expect(t, 30*time.Second, chat("[FIRING:1] PeerDiskFull (critical)"))
		if !strings.Contains(got.Body, "- db1: /var is 97% full") || !strings.Contains(got.Body, am.url) {
			t.Errorf("firing message: %q", got.Body)
		}
		bob.Expect(t, 10*time.Second, inRoom("[FIRING:1] PeerDiskFull"))

		end := time.Now().Add(-time.Second).UTC().Format(time.RFC3339)
		am.amtool(t, "alert", "add", "alertname=PeerDiskFull", "severity=critical", "instance=db1",
			"--annotation=summary=/var is 97% full", "--end="+end)
		alice.Expect(t, 30*time.Second, chat("[RESOLVED:1] PeerDiskFull (critical)"))
		bob.Expect(t, 10*time.Second, inRoom("[RESOLVED:1] PeerDiskFull"))
		// The 200 is counted once the answer is written, which may be
		// after the message reached the users.
		deadline := time.Now().Add(5 * time.Second)
		for d.ReadMetric(t, "crier_webhook_requests_total", "path", "/hooks/alertmanager", "code", "200") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("crier_webhook_requests_total{code=200} below 2 after both notifications")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("outage", func(t *testing.T) {
		failedBefore := am.failedNotifications(t)
		s.down()
		deadline := time.Now().Add(15 * time.Second)
		for d.ReadyStatus() == 200 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		am.amtool(t, "alert", "add", "alertname=PeerOutage", "severity=critical", "instance=web1",
			"--annotation=summary=web1 unreachable")
		// Alertmanager posts after group_wait and retries: each try gets
		// 503 while crier has no server.
		deadline = time.Now().Add(30 * time.Second)
		for d.ReadMetric(t, "crier_webhook_requests_total", "path", "/hooks/alertmanager", "code", "503") < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("no 503 answered during the outage\n%s", d.LogTail(40))
			}
			time.Sleep(100 * time.Millisecond)
		}
		for am.failedNotifications(t) <= failedBefore {
			if time.Now().After(deadline) {
				t.Fatalf("Alertmanager counted no failed webhook notification during the outage")
			}
			time.Sleep(200 * time.Millisecond)
		}
		s.up()
		d.WaitReady(t, 30*time.Second)
		alice := s.user("alice")
		bob := s.user("bob")
		// With the room's history: crier may have posted before bob is in.
		if err := bob.JoinPresence(room, "bob", "<history maxstanzas='20'/>"); err != nil {
			t.Fatal(err)
		}
		alice.Expect(t, 60*time.Second, chat("[FIRING:1] PeerOutage (critical)"))
		bob.Expect(t, 30*time.Second, inRoom("[FIRING:1] PeerOutage"))
		// Posted once: the copy that got 503 was never accepted.
		time.Sleep(3 * time.Second)
		n := 0
		for _, st := range alice.Drain() {
			if chat("PeerOutage")(st) {
				n++
			}
		}
		if n != 0 {
			t.Errorf("alice got %d more copies of the outage notification", n)
		}
	})
}

// noStoreHost is the little of a bot the silence commands need.
type noStoreHost struct{ plugins.Host }

func (noStoreHost) State() (stateNamespace, error) { return nil, plugins.ErrNoStore }

// TestAlertmanagerSilences runs the webhooks plugin's silence and silences
// commands against Debian's Alertmanager and checks the silence with
// amtool.
func TestAlertmanagerSilences(t *testing.T) {
	am := startAlertmanager(t, "http://127.0.0.1:9/unused", "x")
	p, ok, err := webhooks.New(webhooks.Config{{Path: "/hook", To: []string{"ops@localhost"}, AlertmanagerURL: am.url}}, plugins.Core{})
	if err != nil || !ok {
		t.Fatalf("New = %v, %v", ok, err)
	}
	ctx := context.Background()
	if err := p.(plugins.Starter).Start(ctx, plugins.Env{Host: noStoreHost{}}); err != nil {
		t.Fatal(err)
	}
	defer p.(plugins.Stopper).Stop(ctx)
	cmds := map[string]plugins.Command{}
	for _, c := range p.(plugins.Commander).Commands() {
		cmds[c.Name] = c
	}
	r, err := cmds["silence"].Run(ctx, &plugins.Call{Command: "silence", RealJID: "alice@localhost", Time: time.Now(),
		Args: map[string]string{"matchers": `alertname=PeerDiskFull,instance=~"db.*"`, "duration": "2h", "comment": "disk swap"}})
	if err != nil || !strings.Contains(r.Text, "silenced") {
		t.Fatalf("silence = %+v, %v", r, err)
	}
	out := am.amtool(t, "silence", "query", "-o", "extended")
	for _, want := range []string{"PeerDiskFull", "instance=~", "alice@localhost", "disk swap"} {
		if !strings.Contains(out, want) {
			t.Errorf("amtool silence query lacks %q:\n%s", want, out)
		}
	}
	r, err = cmds["silences"].Run(ctx, &plugins.Call{Command: "silences"})
	if err != nil || r.Text != "1 silence" || r.Table == nil || !strings.Contains(r.Table.Rows[0][1], `alertname="PeerDiskFull"`) {
		t.Fatalf("silences = %+v, %v", r, err)
	}
	// Alertmanager refuses a silence whose matchers all match the empty
	// string; its reason comes back as the command's error.
	_, err = cmds["silence"].Run(ctx, &plugins.Call{Command: "silence", Time: time.Now(),
		Args: map[string]string{"matchers": `alertname=~".*"`, "duration": "1h"}})
	if !errors.Is(err, webhooks.ErrAlertmanager) || !strings.Contains(err.Error(), "empty") {
		t.Errorf("silence matching everything: %v, want Alertmanager's refusal", err)
	}
}
