//go:build peers

package peers_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"crier/internal/peers"
	"crier/internal/xmpptest"
)

// Room and nick that the acceptance configs use.
const (
	lobbyLocal = "lobby"
	crierNick  = "crier"
)

var (
	buildOnce sync.Once
	crierBin  string
	buildErr  error
)

// crierBinary builds ./cmd/crier once per test binary and returns its path;
// it fails the test when the build fails.
func crierBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crier-bin-")
		if err != nil {
			buildErr = err
			return
		}
		crierBin = filepath.Join(dir, "crier")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", crierBin, "crier/cmd/crier")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build crier/cmd/crier: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("cannot build the crier binary: %v", buildErr)
	}
	return crierBin
}

// crierConfig is what a test varies in crier's config file.
type crierConfig struct {
	peer     *peers.Peer
	tls      string // "starttls" or "direct"
	password string
	rooms    []string
}

// freePort returns a loopback host:port nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// writeConfig writes a config file for crier and returns its path and the
// HTTP listen address.
func writeConfig(t *testing.T, c crierConfig) (string, string) {
	t.Helper()
	addr := c.peer.C2S
	if c.tls == "direct" {
		addr = c.peer.TLSDirect
	}
	httpAddr := freePort(t)
	var b strings.Builder
	fmt.Fprintf(&b, "[xmpp]\njid = %q\npassword = %q\nresource = %q\ntransport = \"tcp\"\n",
		"crier@"+c.peer.Domain, c.password, crierNick)
	fmt.Fprintf(&b, "address = %q\ntls = %q\nca_file = %q\n\n", addr, c.tls, c.peer.CAFile)
	fmt.Fprintf(&b, "[http]\nlisten = %q\n\n", httpAddr)
	for _, r := range c.rooms {
		fmt.Fprintf(&b, "[[rooms]]\njid = %q\nnick = %q\n\n", r, crierNick)
	}
	b.WriteString("[[rules]]\nname = \"ping\"\nmatch = \"^!ping$\"\nreply = \"pong {{.Nick}}\"\n")
	path := filepath.Join(t.TempDir(), "crier.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, httpAddr
}

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// daemon is one running `crier run` process.
type daemon struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	http   string
	exited chan struct{}
	err    error // valid once exited is closed
}

// startCrier runs `crier run -c FILE` and stops it with SIGTERM when the test
// ends, checking that it exits 0 within 10 seconds. Its stderr goes to the
// test log when the test fails.
func startCrier(t *testing.T, cfg crierConfig) *daemon {
	t.Helper()
	bin := crierBinary(t)
	path, httpAddr := writeConfig(t, cfg)
	d := &daemon{stderr: &syncBuffer{}, http: httpAddr, exited: make(chan struct{})}
	d.cmd = exec.Command(bin, "run", "-c", path)
	d.cmd.Stdout = d.stderr
	d.cmd.Stderr = d.stderr
	// The password in the config file must count, not one in the environment.
	d.cmd.Env = filterEnv(os.Environ(), "CRIER_XMPP_PASSWORD")
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start crier: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		stopped := d.stop(10 * time.Second)
		if t.Failed() || stopped != nil {
			t.Logf("crier output:\n%s", d.stderr.String())
		}
		if stopped != nil {
			t.Errorf("crier shutdown: %v", stopped)
		}
	})
	return d
}

// filterEnv drops key from env.
func filterEnv(env []string, key string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// stop sends SIGTERM and waits for a clean exit (status 0) within limit.
func (d *daemon) stop(limit time.Duration) error {
	select {
	case <-d.exited:
		return fmt.Errorf("crier had already exited: %v", d.err)
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if d.err != nil {
			return fmt.Errorf("crier exited with %v after SIGTERM, want status 0", d.err)
		}
		return nil
	case <-time.After(limit):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("crier did not exit within %v of SIGTERM", limit)
	}
}

// running fails the test if crier has exited.
func (d *daemon) running(t *testing.T) {
	t.Helper()
	select {
	case <-d.exited:
		t.Fatalf("crier exited: %v\n%s", d.err, d.stderr.String())
	default:
	}
}

// readyStatus returns the HTTP status of GET /-/ready, or 0 if it could not
// be fetched.
func (d *daemon) readyStatus() int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + d.http + "/-/ready")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitReady polls GET /-/ready until it answers 200, at most limit.
func (d *daemon) waitReady(t *testing.T, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := 0
	for time.Now().Before(deadline) {
		d.running(t)
		if last = d.readyStatus(); last == http.StatusOK {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("GET http://%s/-/ready: still %d after %v\ncrier output:\n%s", d.http, last, limit, d.stderr.String())
}

// dialAs logs in the account local ("alice", "bob") over STARTTLS.
func dialAs(t *testing.T, p *peers.Peer, local, resource string) *xmpptest.Client {
	t.Helper()
	a := p.Account(t, local)
	return xmpptest.Dial(t, xmpptest.Options{Addr: p.C2S, JID: a.JID, Password: a.Password,
		Resource: resource, RootCAs: p.CertPool()})
}

// pingUntilPong sends "!ping" with send every few seconds until a stanza that
// want accepts arrives, at most limit; it fails the test otherwise. Repeating
// covers the time crier needs to (re)join after a restart or a kick.
func pingUntilPong(t *testing.T, c *xmpptest.Client, limit time.Duration, send func() error, want func(xmpptest.Stanza) bool) xmpptest.Stanza {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if err := send(); err != nil {
			t.Fatalf("send !ping: %v", err)
		}
		wait := min(4*time.Second, time.Until(deadline))
		s, err := c.Wait(context.Background(), 0, wait, want)
		if err == nil {
			return s
		}
		if !errors.Is(err, xmpptest.ErrTimeout) {
			t.Fatalf("waiting for pong: %v", err)
		}
	}
	t.Fatalf("no pong within %v; last stanzas:\n%s", limit, c.Recent(15))
	return xmpptest.Stanza{}
}

func isGroupPong(room, nick string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.Type == "groupchat" && s.From == room+"/"+crierNick &&
			s.Body == "pong "+nick
	}
}

func isChatPong(from, nick string) func(xmpptest.Stanza) bool {
	return func(s xmpptest.Stanza) bool {
		return s.Name == "message" && s.Type == "chat" && strings.HasPrefix(s.From, from) &&
			s.Body == "pong "+nick
	}
}

// TestCrier drives the crier binary against each real server through its
// outside contract: config file, command line, HTTP readiness, XMPP.
func TestCrier(t *testing.T) {
	for _, name := range peers.Names {
		t.Run(name, func(t *testing.T) {
			p := peers.Get(t, name)
			lobby := lobbyLocal + "@" + p.MUC
			crierFull := "crier@" + p.Domain + "/" + crierNick
			crierPW := p.Account(t, "crier").Password

			for _, mode := range []string{"starttls", "direct"} {
				t.Run("ping-"+mode, func(t *testing.T) {
					d := startCrier(t, crierConfig{peer: p, tls: mode, password: crierPW, rooms: []string{lobby}})
					d.waitReady(t, 45*time.Second)
					alice := dialAs(t, p, "alice", "ping-"+mode)
					if err := alice.Join(lobby, "alice"); err != nil {
						t.Fatalf("alice joins %s: %v", lobby, err)
					}
					pingUntilPong(t, alice, 20*time.Second,
						func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
						isGroupPong(lobby, "alice"))
					pingUntilPong(t, alice, 20*time.Second,
						func() error { return alice.SendMessage(crierFull, "chat", "!ping") },
						isChatPong("crier@"+p.Domain, "alice"))
				})
			}

			t.Run("iq", func(t *testing.T) {
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: crierPW, rooms: []string{lobby}})
				d.waitReady(t, 45*time.Second)
				alice := dialAs(t, p, "alice", "iq")
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()

				res, err := alice.IQ(ctx, crierFull, "get", "<query xmlns='http://jabber.org/protocol/disco#info'/>")
				if err != nil {
					t.Errorf("disco#info: %v", err)
				} else if res.Find("http://jabber.org/protocol/disco#info", "query") == nil {
					t.Errorf("disco#info reply has no query: %s", res.Raw)
				} else {
					for _, f := range []string{"urn:xmpp:ping", "jabber:iq:version", "urn:xmpp:time"} {
						if !strings.Contains(res.Raw, "'"+f+"'") {
							t.Errorf("disco#info does not advertise %s: %s", f, res.Raw)
						}
					}
				}

				res, err = alice.IQ(ctx, crierFull, "get", "<ping xmlns='urn:xmpp:ping'/>")
				if err != nil || res.Type != "result" || res.From != crierFull {
					t.Errorf("ping: %v %s", err, res.Raw)
				}

				res, err = alice.IQ(ctx, crierFull, "get", "<query xmlns='jabber:iq:version'/>")
				if err != nil {
					t.Errorf("version: %v", err)
				} else if n := res.Find("jabber:iq:version", "name"); n == nil || n.Text != "crier" {
					t.Errorf("version name is not \"crier\": %s", res.Raw)
				}

				res, err = alice.IQ(ctx, crierFull, "get", "<time xmlns='urn:xmpp:time'/>")
				if err != nil {
					t.Errorf("time: %v", err)
				} else if tm := res.Find("urn:xmpp:time", "time"); tm == nil || tm.Child("", "utc") == nil {
					t.Errorf("time reply has no <utc/>: %s", res.Raw)
				} else if _, perr := time.Parse(time.RFC3339, strings.TrimSpace(tm.Child("", "utc").Text)); perr != nil {
					t.Errorf("time reply utc %q: %v", tm.Child("", "utc").Text, perr)
				}
			})

			t.Run("wrong-password", func(t *testing.T) {
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: "wrong-" + crierPW, rooms: []string{lobby}})
				deadline := time.Now().Add(20 * time.Second)
				for !strings.Contains(strings.ToLower(d.stderr.String()), "authentication") {
					d.running(t)
					if time.Now().After(deadline) {
						t.Fatalf("no log line mentions \"authentication\" within 20s:\n%s", d.stderr.String())
					}
					time.Sleep(200 * time.Millisecond)
				}
				// crier keeps retrying rather than exiting, and is not ready.
				time.Sleep(5 * time.Second)
				d.running(t)
				if st := d.readyStatus(); st == http.StatusOK {
					t.Errorf("GET /-/ready = 200 with a wrong password")
				}
				var lines []string
				for _, l := range strings.Split(d.stderr.String(), "\n") {
					if strings.Contains(strings.ToLower(l), "authentication") {
						lines = append(lines, l)
					}
				}
				t.Logf("authentication lines: %d, first: %s", len(lines), lines[0])
			})

			t.Run("kick-rejoin", func(t *testing.T) {
				room := fmt.Sprintf("kick%d@%s", time.Now().UnixNano(), p.MUC)
				alice := dialAs(t, p, "alice", "owner")
				// alice creates the room, so she owns it and may kick.
				if err := alice.Join(room, "alice"); err != nil {
					t.Fatalf("alice creates %s: %v", room, err)
				}
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: crierPW, rooms: []string{room}})
				d.waitReady(t, 45*time.Second)
				crierIn := func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/"+crierNick && s.Type == ""
				}
				alice.Expect(t, 30*time.Second, crierIn)
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := alice.IQ(ctx, room, "set", "<query xmlns='http://jabber.org/protocol/muc#admin'>"+
					"<item nick='"+crierNick+"' role='none'><reason>test kick</reason></item></query>")
				if err != nil {
					t.Fatalf("alice kicks crier: %v", err)
				}
				kicked := alice.Expect(t, 10*time.Second, func(s xmpptest.Stanza) bool {
					return s.Name == "presence" && s.From == room+"/"+crierNick && s.Type == "unavailable"
				})
				if !kicked.HasStatus("307") {
					t.Errorf("kick presence lacks status 307: %s", kicked.Raw)
				}
				back := alice.Expect(t, 60*time.Second, crierIn)
				t.Logf("crier rejoined: %s", back.Raw)
				pingUntilPong(t, alice, 20*time.Second,
					func() error { return alice.SendMessage(room, "groupchat", "!ping") },
					isGroupPong(room, "alice"))
			})

			// Last: it restarts the server under everything else.
			t.Run("server-restart", func(t *testing.T) {
				d := startCrier(t, crierConfig{peer: p, tls: "starttls", password: crierPW, rooms: []string{lobby}})
				d.waitReady(t, 45*time.Second)
				p.Restart(t)
				d.running(t)
				d.waitReady(t, 90*time.Second)
				alice := dialAs(t, p, "alice", "after-restart")
				if err := alice.Join(lobby, "alice"); err != nil {
					t.Fatalf("alice joins %s after the restart: %v", lobby, err)
				}
				pingUntilPong(t, alice, 90*time.Second,
					func() error { return alice.SendMessage(lobby, "groupchat", "!ping") },
					isGroupPong(lobby, "alice"))
			})
		})
	}
}
