//go:build !noembed

package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"

	"crier/internal/crierproc"
	"crier/internal/xmpptest"
)

// daemon is a `crier run` in this process.
type daemon struct {
	t    *testing.T
	logs *crierproc.Buffer
	stop context.CancelFunc
	done chan error
}

// startDaemon runs `crier run -c path` at debug level until the test ends.
func startDaemon(t *testing.T, path string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{t: t, logs: &crierproc.Buffer{}, stop: cancel, done: make(chan error, 1)}
	go func() { d.done <- runDaemon(ctx, []string{"-c", path, "-log-level", "debug"}, io.Discard, d.logs, nil) }()
	t.Cleanup(func() {
		if err := d.shutdown(); err != nil {
			t.Errorf("crier run: %v", err)
		}
		if t.Failed() {
			t.Logf("log of crier run -c %s:\n%s", path, d.logs.String())
		}
	})
	return d
}

// shutdown stops the daemon and returns what it returned.
func (d *daemon) shutdown() error {
	d.stop()
	select {
	case err := <-d.done:
		d.done <- err
		return err
	case <-time.After(15 * time.Second):
		return fmt.Errorf("did not stop within 15s")
	}
}

// waitReady polls GET /-/ready on ops until it answers 200.
func waitReady(t *testing.T, d *daemon, ops string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("crier run ended: %v\n%s", err, d.logs.String())
		default:
		}
		if resp, err := http.Get("http://" + ops + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("not ready after 20s\n%s", d.logs.String())
}

// demoConfig is a demo config (embedded XMPP server, the lobby, a ping
// rule) on the given addresses.
func demoConfig(xmppAddr, embeddedHTTP, ops, botPW, alicePW string) string {
	return fmt.Sprintf(`[xmpp]
jid = "crier@localhost"
password = %q
address = %q

[http]
listen = %q

[embedded]
xmpp = true
http = %q

[[embedded.accounts]]
jid = "alice@localhost"
password = %q

[[rooms]]
jid = "lobby@conference.localhost"

[[rules]]
name = "ping"
match = "^!ping$"
reply = "pong {{.Nick}}"
`, botPW, xmppAddr, ops, embeddedHTTP, alicePW)
}

func writeIn(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDemoCertificateSurvivesFailedStarts is the demo's certificate story:
// the first start keeps it beside the config; later starts that fail on a
// port in use (the operations port, the XMPP port) name the key to change
// and leave the file as it was; crier send with the config trusts it and
// delivers to a user and the room.
func TestDemoCertificateSurvivesFailedStarts(t *testing.T) {
	dir := t.TempDir()
	xmppAddr, webAddr, ops := crierproc.FreePort(t), crierproc.FreePort(t), crierproc.FreePort(t)
	path := writeIn(t, dir, "config.toml", demoConfig(xmppAddr, webAddr, ops, "botpw", "alicepw"))
	d := startDaemon(t, path)
	waitReady(t, d, ops)
	certPath := filepath.Join(dir, ".crier", "embedded-localhost.pem")
	fi, err := os.Stat(certPath)
	if err != nil {
		t.Fatalf("no certificate kept beside the config: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("certificate file mode %v, want 0600", fi.Mode().Perm())
	}
	first, _ := os.ReadFile(certPath)

	// The same config again: the operations port is taken.
	code, errs := runDaemonOnce(t, path)
	if code != 1 || !strings.Contains(errs, "http.listen "+ops+" is in use") || !strings.Contains(errs, "change http.listen in "+path) {
		t.Errorf("second start: exit %d, want 1 naming http.listen:\n%s", code, errs)
	}
	// Another config beside it, on the same XMPP port.
	other := writeIn(t, dir, "other.toml", demoConfig(xmppAddr, crierproc.FreePort(t), crierproc.FreePort(t), "botpw", "alicepw"))
	code, errs = runDaemonOnce(t, other)
	if code != 1 || !strings.Contains(errs, "xmpp.address "+xmppAddr+" is in use") {
		t.Errorf("third start: exit %d, want 1 naming xmpp.address:\n%s", code, errs)
	}
	// And one whose web port is taken (by the running demo's).
	third := writeIn(t, dir, "third.toml", demoConfig(crierproc.FreePort(t), webAddr, crierproc.FreePort(t), "botpw", "alicepw"))
	code, errs = runDaemonOnce(t, third)
	if code != 1 || !strings.Contains(errs, "embedded.http "+webAddr+" is in use") {
		t.Errorf("fourth start: exit %d, want 1 naming embedded.http:\n%s", code, errs)
	}
	if now, _ := os.ReadFile(certPath); !bytes.Equal(now, first) {
		t.Fatal("a failed start replaced the running demo's certificate")
	}

	// A client trusting the kept file reaches the running server: it is
	// the certificate the server presents.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(first) {
		t.Fatal("no certificate in the kept file")
	}
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: xmppAddr, JID: "alice@localhost", Password: "alicepw", RootCAs: pool, Timeout: 5 * time.Second})
	if err := alice.Join(lobby, "alice"); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runIn("", "send", "-c", path, "--to", "alice@localhost", "--to", lobby, "to both")
	if code != 0 {
		t.Fatalf("crier send -c %s: exit %d: %s", path, code, errs)
	}
	alice.Expect(t, 5*time.Second, fromBot("to both"))
	alice.Expect(t, 5*time.Second, func(s xmpptest.Stanza) bool { return s.Type == "groupchat" && s.Body == "to both" })

	// A kept file that others may write is not trusted.
	if err := os.Chmod(certPath, 0o620); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runIn("", "send", "-c", path, "--to", "alice@localhost", "x")
	if code != 1 || !strings.Contains(errs, "not trusting") {
		t.Fatalf("group-writable certificate: exit %d: %s", code, errs)
	}
}

// runDaemonOnce runs `crier run -c path`, expecting it to end on its own
// within 20 seconds, and returns its exit code and its error output.
func runDaemonOnce(t *testing.T, path string) (int, string) {
	t.Helper()
	var logs crierproc.Buffer
	done := make(chan int, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		code := 0
		if err := runDaemon(ctx, []string{"-c", path}, io.Discard, &logs, nil); err != nil {
			code = runWith(err, &logs)
		}
		done <- code
	}()
	select {
	case code := <-done:
		return code, logs.String()
	case <-time.After(25 * time.Second):
		t.Fatalf("crier run -c %s did not end", path)
		return 0, ""
	}
}

// TestSecretsNeverInLogsOrMetrics runs the daemon at debug level with known
// passwords, lets a user log in (with PLAIN, so the password crosses the
// embedded server in base64) and talk to the bot, then looks for each
// secret, plain and base64, in the log and in /metrics.
func TestSecretsNeverInLogsOrMetrics(t *testing.T) {
	const botPW, alicePW = "bot-S3cret-7f1c", "alice-S3cret-9a2e"
	dir := t.TempDir()
	xmppAddr, ops := crierproc.FreePort(t), crierproc.FreePort(t)
	path := writeIn(t, dir, "config.toml", demoConfig(xmppAddr, crierproc.FreePort(t), ops, botPW, alicePW))
	d := startDaemon(t, path)
	waitReady(t, d, ops)
	certPEM, err := os.ReadFile(filepath.Join(dir, ".crier", "embedded-localhost.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	alice := xmpptest.Dial(t, xmpptest.Options{Addr: xmppAddr, JID: "alice@localhost", Password: alicePW, RootCAs: pool, Mechanisms: []sasl.Mechanism{sasl.Plain}, Timeout: 5 * time.Second})
	if err := alice.SendMessage("crier@localhost", "chat", "!ping"); err != nil {
		t.Fatal(err)
	}
	alice.Expect(t, 5*time.Second, fromBot("pong alice"))
	// A failed reload logs its problems: it must not print the file's secrets either.
	writeIn(t, dir, "config.toml", demoConfig(xmppAddr, "bad address", ops, botPW, alicePW))
	req, _ := http.NewRequest("POST", "http://"+ops+"/-/reload", nil)
	req.Header.Set("X-Crier-Reload", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	reloadAnswer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp, err = http.Get("http://" + ops + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := d.shutdown(); err != nil {
		t.Fatal(err)
	}
	logs := d.logs.String()
	if !strings.Contains(logs, "level=DEBUG") || !strings.Contains(string(metrics), "crier_connected") {
		t.Fatalf("the run logged no debug lines or served no metrics:\n%s", logs)
	}
	for _, secret := range []string{
		botPW, alicePW,
		base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + alicePW)),
		base64.StdEncoding.EncodeToString([]byte("alice@localhost\x00alice\x00" + alicePW)),
		base64.StdEncoding.EncodeToString([]byte("\x00crier\x00" + botPW)),
		base64.StdEncoding.EncodeToString([]byte(alicePW)),
		base64.StdEncoding.EncodeToString([]byte(botPW)),
	} {
		for what, text := range map[string]string{"log": logs, "/metrics": string(metrics), "reload answer": string(reloadAnswer)} {
			if strings.Contains(text, secret) {
				t.Errorf("%q appears in the %s", secret, what)
			}
		}
	}
}
