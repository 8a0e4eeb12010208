package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"crier/internal/diag"
)

// noEnv is an environment without CRIER_XMPP_PASSWORD, so that tests do not
// depend on the shell they run in.
func noEnv(string) string { return "" }

// mustLoad loads src (as dir/config.toml) and fails the test on any error.
func mustLoad(t *testing.T, dir, src string) *Config {
	t.Helper()
	c, err := load(filepath.Join(dir, "config.toml"), []byte(src), noEnv)
	if err != nil {
		t.Fatalf("load: unexpected error:\n%v\nsource:\n%s", err, numbered(src))
	}
	return c
}

// loadErrs loads src and returns its problems, failing the test when the
// error is not a diag.List.
func loadErrs(t *testing.T, dir, src string, getenv func(string) string) diag.List {
	t.Helper()
	c, err := load(filepath.Join(dir, "config.toml"), []byte(src), getenv)
	if err == nil {
		return nil
	}
	_ = c // a file that parsed returns its config with the error, for checkers
	var l diag.List
	if !errors.As(err, &l) {
		t.Fatalf("error is %T, want diag.List: %v", err, err)
	}
	return l
}

// marked returns what the "# ERR: text" comments of src expect: one error
// at that line whose message contains text, for each such comment.
func marked(src string) []diag.Error {
	var want []diag.Error
	for i, line := range strings.Split(src, "\n") {
		for _, text := range strings.Split(line, "# ERR: ")[1:] {
			want = append(want, diag.Error{Line: i + 1, Msg: strings.TrimSpace(text)})
		}
	}
	return want
}

// checkMarked checks that the problems of src are exactly those its
// "# ERR: text" comments announce, in line order.
func checkMarked(t *testing.T, got diag.List, src string) {
	t.Helper()
	want := marked(src)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].Line == want[i].Line && strings.Contains(got[i].Msg, want[i].Msg)
	}
	if !ok {
		var w []string
		for _, e := range want {
			w = append(w, fmt.Sprintf("line %d: ...%s...", e.Line, e.Msg))
		}
		t.Errorf("problems:\n%v\nwant:\n%s\nsource:\n%s", got, strings.Join(w, "\n"), numbered(src))
	}
}

// numbered prefixes each line of src with its number, for failure output.
func numbered(src string) string {
	lines := strings.Split(src, "\n")
	for i := range lines {
		lines[i] = fmt.Sprintf("%3d  %s", i+1, lines[i])
	}
	return strings.Join(lines, "\n")
}

// writeFile writes a file into dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// testCA returns a freshly made self-signed certificate in PEM, for
// ca_file.
func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
