package webhooks_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"crier/bot"
	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/internal/miniserver"
	"crier/internal/xmpptest"
	_ "crier/plugins/webhooks"
)

const (
	room    = "ops@conference.localhost"
	crierPW = "botpw"
)

var accounts = map[string]string{"crier@localhost": crierPW, "alice@localhost": "alicepw", "bob@localhost": "bobpw"}

// xmppServer is a mini server that can be stopped and started again on
// the same address with the same certificate, as a real server restart
// (or an outage) looks to crier.
type xmppServer struct {
	tb   testing.TB
	addr string
	cert tls.Certificate
	pool *x509.CertPool
	srv  *miniserver.Server
}

func startXMPP(tb testing.TB) *xmppServer {
	tb.Helper()
	certPEM, keyPEM, err := miniserver.NewCertificate("localhost")
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &xmppServer{tb: tb, addr: addr, cert: cert, pool: pool}
	s.start()
	tb.Cleanup(s.stop)
	return s
}

// start starts the server (again), retrying while the port is still held
// by the closing one.
func (s *xmppServer) start() {
	s.tb.Helper()
	var err error
	for range 50 {
		s.srv, err = miniserver.Start(context.Background(), miniserver.Config{Domain: "localhost", Addr: s.addr,
			Accounts: accounts, Certificate: &s.cert, Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("mini server on %s: %v", s.addr, err)
}

func (s *xmppServer) stop() {
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

// crier is a bot with the webhooks plugin, its operations listener served
// by an httptest server.
type crier struct {
	bot  *bot.Bot
	ops  *httptest.Server
	logs *crierproc.Buffer
	stop func()
}

// crierConfig is the config of a bot connected to s, in the room, with the
// tables given.
func crierConfig(tb testing.TB, s *xmppServer, tables string) *config.Config {
	tb.Helper()
	src := fmt.Sprintf(`
[xmpp]
jid = "crier@localhost"
password = %q
resource = "crier"
address = %q
keepalive = "1s"
keepalive_timeout = "1s"
connect_timeout = "2s"

[[rooms]]
jid = %q
nick = "crier"
%s`, crierPW, s.addr, room, tables)
	tb.Setenv(config.PasswordEnv, "")
	cfg, err := config.LoadBytes("test.toml", []byte(src))
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	return cfg
}

// startCrier runs a bot connected to s, in the room, with the webhook
// tables given, until the test ends or its stop is called.
func startCrier(tb testing.TB, s *xmppServer, tables string) *crier {
	tb.Helper()
	cfg := crierConfig(tb, s, tables)
	logs := &crierproc.Buffer{}
	b, err := bot.New(cfg, bot.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		RootCAs: s.pool, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		tb.Fatalf("bot.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	c := &crier{bot: b, logs: logs, ops: httptest.NewServer(b.OpsHandler(func() error { return nil }))}
	var once sync.Once
	c.stop = func() {
		once.Do(func() {
			c.ops.Close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				tb.Errorf("bot did not stop")
			}
		})
	}
	tb.Cleanup(func() {
		c.stop()
		if tb.Failed() {
			tb.Logf("crier log:\n%s", logs.String())
		}
	})
	c.waitReady(tb, 10*time.Second)
	return c
}

func (c *crier) waitReady(tb testing.TB, d time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok, _ := c.bot.Ready(); ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, why := c.bot.Ready()
	tb.Fatalf("crier not ready after %v: %s", d, strings.Join(why, "; "))
}

// post sends body to path on the operations listener.
func (c *crier) post(tb testing.TB, path, token, body string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, c.ops.URL+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// user logs name in to s.
func (s *xmppServer) user(tb testing.TB, name string) *xmpptest.Client {
	tb.Helper()
	return xmpptest.Dial(tb, xmpptest.Options{Addr: s.addr, JID: name + "@localhost", Password: name + "pw",
		RootCAs: s.pool, Timeout: 5 * time.Second})
}

// amBody is an Alertmanager payload with one alert.
func amBody(group, status, name, instance string) string {
	ends := "0001-01-01T00:00:00Z"
	if status == "resolved" {
		ends = "2026-01-02T03:14:05Z"
	}
	return fmt.Sprintf(`{"version":"4","groupKey":%q,"status":%q,"receiver":"crier","groupLabels":{"alertname":%q},`+
		`"commonLabels":{"alertname":%q,"severity":"critical"},"commonAnnotations":{},"externalURL":"http://am.example.org",`+
		`"alerts":[{"status":%q,"labels":{"alertname":%q,"severity":"critical","instance":%q},`+
		`"annotations":{"summary":"%s on %s"},"startsAt":"2026-01-02T03:04:05Z","endsAt":%q,`+
		`"generatorURL":"http://prom.example.org/g","fingerprint":"%s%s"}]}`,
		group, status, name, name, status, name, instance, name, instance, ends, name, instance)
}
