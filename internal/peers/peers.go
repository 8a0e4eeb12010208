package peers

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DefaultDir is the directory that holds one sub-directory per running peer
// when the environment variable CRIER_PEERS_DIR is unset.
const DefaultDir = "/tmp/crier-peers"

// EnvDir is the environment variable naming the directory that holds one
// sub-directory per running peer (prosody, ejabberd).
const EnvDir = "CRIER_PEERS_DIR"

// Names lists the peers that scripts/peers can run.
var Names = []string{"prosody", "ejabberd"}

// Account is one account that exists on a peer.
type Account struct {
	// JID is the bare address, such as alice@localhost.
	JID string
	// Password is the account's password.
	Password string
}

// Peer describes one running server instance, as written to DIR/env by the
// script that started it.
type Peer struct {
	// Name is the peer's name: "prosody" or "ejabberd".
	Name string
	// Dir is the instance directory holding its config, data and env file.
	Dir string
	// Domain is the XMPP domain the instance serves (localhost).
	Domain string
	// MUC is the domain of the multi-user chat service.
	MUC string
	// C2S is the host:port of the client listener (STARTTLS required).
	C2S string
	// TLSDirect is the host:port of the direct TLS (XEP-0368) client listener.
	TLSDirect string
	// HTTP is the host:port of the HTTP listener.
	HTTP string
	// BOSHURL is the URL of the BOSH endpoint.
	BOSHURL string
	// WSURL is the URL of the WebSocket endpoint.
	WSURL string
	// CAFile is the PEM file of the self-signed certificate the instance uses.
	CAFile string
	// LogFile is the server's log file.
	LogFile string
	// Script is the path of the script that runs the instance.
	Script string
	// Shaper tells whether the instance limits each client's input rate.
	Shaper bool
	// Component is the host:port of the XEP-0114 component listener,
	// ComponentDomain the component's domain (alerts.localhost) and
	// ComponentSecret its shared secret.
	Component, ComponentDomain, ComponentSecret string
	// Accounts maps the local part (crier, alice, bob, user1...) to the
	// account.
	Accounts map[string]Account
	// Env holds every key of the env file, including those without a field.
	Env map[string]string
}

// Dir returns the directory that holds the peers' instance directories:
// $CRIER_PEERS_DIR or DefaultDir.
func Dir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	return DefaultDir
}

// HowToStart returns the commands that start the peers, for failure messages.
func HowToStart(name string) string {
	d := filepath.Join(Dir(), name)
	return fmt.Sprintf("run the whole suite with `scripts/test` (or `scripts/test --peers-only`), "+
		"or start this peer by hand with `scripts/peers/install.sh && scripts/peers/%s.sh start %s` "+
		"and set %s=%s (the default)", name, d, EnvDir, Dir())
}

// Get returns the running peer called name ("prosody" or "ejabberd") and
// fails the test if its env file is missing or malformed, or its client port
// does not accept connections.
func Get(t testing.TB, name string) *Peer {
	t.Helper()
	p, err := Load(filepath.Join(Dir(), name))
	if err != nil {
		t.Fatalf("peers: %s is not available: %v\n%s", name, err, HowToStart(name))
	}
	if p.Name != name {
		t.Fatalf("peers: %s/env describes %q, not %q", p.Dir, p.Name, name)
	}
	if err := p.Reachable(5 * time.Second); err != nil {
		t.Fatalf("peers: %s is not running: %v\n%s", name, err, HowToStart(name))
	}
	return p
}

// Load parses DIR/env, the file that scripts/peers writes when it starts an
// instance in DIR.
func Load(dir string) (*Peer, error) {
	env, err := ParseEnv(filepath.Join(dir, "env"))
	if err != nil {
		return nil, err
	}
	p := &Peer{
		Name:            env["PEER"],
		Dir:             dir,
		Domain:          env["DOMAIN"],
		MUC:             env["MUC"],
		C2S:             env["C2S"],
		TLSDirect:       env["TLS_DIRECT"],
		HTTP:            env["HTTP"],
		BOSHURL:         env["BOSH_URL"],
		WSURL:           env["WS_URL"],
		CAFile:          env["CA_FILE"],
		LogFile:         env["LOG_FILE"],
		Script:          env["SCRIPT"],
		Shaper:          env["SHAPER"] == "1",
		Component:       env["COMPONENT"],
		ComponentDomain: env["COMPONENT_DOMAIN"],
		ComponentSecret: env["COMPONENT_SECRET"],
		Accounts:        map[string]Account{},
		Env:             env,
	}
	for _, f := range strings.Fields(env["ACCOUNTS"]) {
		j, pw, ok := strings.Cut(f, ":")
		local, _, ok2 := strings.Cut(j, "@")
		if !ok || !ok2 || local == "" {
			return nil, fmt.Errorf("%s/env: malformed account %q", dir, f)
		}
		p.Accounts[local] = Account{JID: j, Password: pw}
	}
	var missing []string
	for k, v := range map[string]string{"PEER": p.Name, "DOMAIN": p.Domain, "C2S": p.C2S,
		"CA_FILE": p.CAFile, "SCRIPT": p.Script, "ACCOUNTS": env["ACCOUNTS"]} {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s/env: missing %s", dir, strings.Join(missing, ", "))
	}
	return p, nil
}

// ParseEnv reads a file of KEY=VALUE lines as the peer scripts write them:
// blank lines and lines starting with # are ignored, and one pair of
// surrounding single or double quotes is removed from a value. A later line
// overrides an earlier one with the same key.
func ParseEnv(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: not KEY=VALUE: %q", path, n, line)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return env, nil
}

// Reachable checks, for at most timeout, that the client port accepts TCP
// connections.
func (p *Peer) Reachable(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		var c net.Conn
		c, err = net.DialTimeout("tcp", p.C2S, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s does not accept connections: %w", p.C2S, err)
}

// CertPool returns a pool holding the instance's self-signed certificate, to
// use as RootCAs.
func (p *Peer) CertPool() *x509.CertPool {
	pool, err := LoadCertPool(p.CAFile)
	if err != nil {
		// The file was checked to exist when the env was loaded; a failure
		// here means the instance directory was removed under the test.
		panic(fmt.Sprintf("peers: %v", err))
	}
	return pool
}

// LoadCertPool returns a pool holding the PEM certificates in file.
func LoadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}

// Account returns the account with the given local part (crier, alice, bob,
// user1...) and fails the test if the peer has none.
func (p *Peer) Account(t testing.TB, local string) Account {
	t.Helper()
	a, ok := p.Accounts[local]
	if !ok {
		t.Fatalf("peers: %s has no account %q", p.Name, local)
	}
	return a
}

// Restart runs the script's restart command (same ports, same data), which
// returns once the client port accepts connections again, and fails the test
// if it does not succeed within two minutes.
func (p *Peer) Restart(t testing.TB) {
	t.Helper()
	if err := p.run("restart", 2*time.Minute); err != nil {
		t.Fatalf("peers: restart %s: %v", p.Name, err)
	}
	if err := p.Reachable(10 * time.Second); err != nil {
		t.Fatalf("peers: %s after restart: %v", p.Name, err)
	}
}

// Stop runs the script's stop command; Start runs its start command. Tests
// that stop a peer must start it again before they end.
func (p *Peer) Stop(t testing.TB) {
	t.Helper()
	if err := p.run("stop", time.Minute); err != nil {
		t.Fatalf("peers: stop %s: %v", p.Name, err)
	}
}

// Start runs the script's start command, which returns once the client port
// accepts connections, and fails the test otherwise.
func (p *Peer) Start(t testing.TB) {
	t.Helper()
	if err := p.run("start", 2*time.Minute); err != nil {
		t.Fatalf("peers: start %s: %v", p.Name, err)
	}
}

// LogTail returns the last n lines of the server's log, for failure messages.
func (p *Peer) LogTail(n int) string {
	b, err := os.ReadFile(p.LogFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (p *Peer) run(cmd string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, p.Script, cmd, p.Dir)
	// Keep the instance's shaper setting (kept in the env file) unless the
	// caller's environment overrides it.
	out, err := c.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: no result in %v\n%s", p.Script, cmd, timeout, out)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", p.Script, cmd, err, out)
	}
	return nil
}
