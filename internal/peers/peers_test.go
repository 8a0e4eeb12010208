package peers

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeEnv(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const goodEnv = `# comment
PEER=prosody
DOMAIN=localhost
MUC=conference.localhost
C2S=127.0.0.1:15222
TLS_DIRECT='127.0.0.1:15223'
HTTP=127.0.0.1:15280
BOSH_URL=http://127.0.0.1:15280/http-bind
CA_FILE=/x/cert.pem
SCRIPT=/x/prosody.sh
SHAPER=1
ACCOUNTS="crier@localhost:crierpw alice@localhost:alicepw"
export EXTRA=yes
`

func TestLoad(t *testing.T) {
	dir := writeEnv(t, goodEnv)
	p, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"Name", p.Name, "prosody"},
		{"Dir", p.Dir, dir},
		{"MUC", p.MUC, "conference.localhost"},
		{"C2S", p.C2S, "127.0.0.1:15222"},
		{"TLSDirect (quoted)", p.TLSDirect, "127.0.0.1:15223"},
		{"BOSHURL", p.BOSHURL, "http://127.0.0.1:15280/http-bind"},
		{"CAFile", p.CAFile, "/x/cert.pem"},
		{"alice", p.Accounts["alice"].JID + " " + p.Accounts["alice"].Password, "alice@localhost alicepw"},
		{"crier", p.Accounts["crier"].Password, "crierpw"},
		{"export", p.Env["EXTRA"], "yes"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if !p.Shaper || len(p.Accounts) != 2 {
		t.Errorf("Shaper = %v, %d accounts; want true, 2", p.Shaper, len(p.Accounts))
	}
}

func TestLoadErrors(t *testing.T) {
	cases := map[string]struct{ body, want string }{
		"no file":       {"", "no such file"},
		"not key=value": {"PEER prosody\n", "not KEY=VALUE"},
		"missing keys":  {"PEER=prosody\n", "missing"},
		"bad account":   {strings.Replace(goodEnv, "alice@localhost:alicepw", "alice", 1), "malformed account"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.body != "" {
				dir = writeEnv(t, tc.body)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestReachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Peer{C2S: l.Addr().String()}
	if err := p.Reachable(2 * time.Second); err != nil {
		t.Errorf("Reachable with a listener: %v", err)
	}
	l.Close()
	start := time.Now()
	if err := p.Reachable(300 * time.Millisecond); err == nil {
		t.Error("Reachable succeeded with nothing listening")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Reachable took %v with a 300ms limit", d)
	}
}

func TestDirAndHowToStart(t *testing.T) {
	t.Setenv(EnvDir, "")
	if Dir() != DefaultDir {
		t.Errorf("Dir() = %q without %s, want %q", Dir(), EnvDir, DefaultDir)
	}
	t.Setenv(EnvDir, "/somewhere")
	if Dir() != "/somewhere" {
		t.Errorf("Dir() = %q, want /somewhere", Dir())
	}
	if h := HowToStart("ejabberd"); !strings.Contains(h, "scripts/test") || !strings.Contains(h, "ejabberd.sh start /somewhere/ejabberd") {
		t.Errorf("HowToStart = %q", h)
	}
}

func TestLoadCertPool(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a cert"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCertPool(bad); err == nil {
		t.Error("LoadCertPool accepted a file without certificates")
	}
	if _, err := LoadCertPool(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("LoadCertPool accepted a missing file")
	}
}
