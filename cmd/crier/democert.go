package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"crier/internal/config"
)

// demoCertDir is the directory beside a config file where the embedded
// server keeps its certificate and key.
const demoCertDir = ".crier"

// demoCertPath is where the embedded server of cfg keeps its certificate
// and key, one PEM file beside the config file, per XMPP domain. The first
// `crier run` creates it, every later start of the same config reuses it,
// and `crier send` with the same config trusts it: the demo's certificate
// is the config's own, not one shared file that each start rewrites.
func demoCertPath(cfg *config.Config) string {
	domain := cfg.XMPP.Addr().Domainpart()
	if cfg.XMPP.Component() {
		domain = cfg.XMPP.ServerDomain // the server's, not the component's
	}
	return filepath.Join(cfg.Dir(), demoCertDir, "embedded-"+domain+".pem")
}

// demoRoots returns the system's certificates and the embedded server's
// one kept at path, for `crier send` with a config that has [embedded]
// xmpp on. Only the certificate is taken from the file (not its key).
func demoRoots(path string) (*x509.CertPool, error) {
	data, err := readPrivateFile(path, 64<<10)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no certificate in it", path)
	}
	return pool, nil
}

// readPrivateFile reads a file of at most limit bytes that only its owner
// may write: a certificate file that another user could rewrite is not one
// to trust.
func readPrivateFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("%s: others may write it (mode %v); it must be writable by its owner only", path, fi.Mode().Perm())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}
