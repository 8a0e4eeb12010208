package crierproc

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// Example is an example folder's config.toml running, unchanged, from a
// copy in a directory of its own (so that state and the embedded server's
// certificate are not written into the repository).
type Example struct {
	Daemon *Daemon
	// Addr is the config's xmpp.address and HTTP its http.listen.
	Addr, HTTP string
	// Pool trusts the embedded server's certificate.
	Pool *x509.CertPool
}

// StartExample runs crier on file (an example's config.toml), waits until
// it is ready, and decodes the file into into as well (any struct of the
// keys the test needs; nil for none).
func StartExample(t *testing.T, file string, into any) *Example {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		XMPP struct {
			Address string `toml:"address"`
		} `toml:"xmpp"`
		HTTP struct {
			Listen string `toml:"listen"`
		} `toml:"http"`
	}
	if _, err := toml.Decode(string(data), &keys); err != nil {
		t.Fatal(err)
	}
	if into != nil {
		if _, err := toml.Decode(string(data), into); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d := Start(t, path, keys.HTTP.Listen)
	d.WaitReady(t, 30*time.Second)
	pem, err := os.ReadFile(filepath.Join(dir, ".crier", "embedded-localhost.pem"))
	if err != nil {
		t.Fatalf("the embedded server's certificate: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in .crier/embedded-localhost.pem")
	}
	return &Example{Daemon: d, Addr: keys.XMPP.Address, HTTP: keys.HTTP.Listen, Pool: pool}
}

// CheckExample runs `crier check -c file` as an example's README shows and
// fails unless it accepts the file.
func CheckExample(t *testing.T, file string) {
	t.Helper()
	out, err := exec.Command(Binary(t), "check", "-c", file).CombinedOutput()
	if err != nil {
		t.Fatalf("crier check -c %s: %v\n%s", file, err, out)
	}
	if !strings.Contains(string(out), "ok") {
		t.Errorf("crier check -c %s: %s", file, out)
	}
}
