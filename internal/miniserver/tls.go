package miniserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"time"
)

// tlsMaterial is the server's certificate (self-signed, made at start or
// given in Config.Certificate) and the configs built on it.
type tlsMaterial struct {
	certPEM  []byte
	pool     *x509.CertPool
	starttls *tls.Config // for STARTTLS
	direct   *tls.Config // for the direct TLS listener (ALPN xmpp-client)
}

// NewCertificate makes a self-signed certificate for domain (and
// localhost, 127.0.0.1 and ::1), valid for ten years, and returns it with
// its private key, both PEM-encoded. A caller that wants the server to keep
// one certificate across restarts saves them and passes them back as
// Config.Certificate (tls.X509KeyPair reads them).
func NewCertificate(domain string) (certPEM, keyPEM []byte, err error) {
	cert, err := newCertificate(domain)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, nil, fmt.Errorf("miniserver: key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func newCertificate(domain string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("miniserver: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("miniserver: serial: %w", err)
	}
	dns := []string{"localhost"}
	if domain != "localhost" && net.ParseIP(domain) == nil {
		dns = append(dns, domain, "*."+domain)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain, Organization: []string{"crier mini server"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              dns,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("miniserver: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// newTLSMaterial builds the server's TLS configs on cert, or on a new
// self-signed certificate for domain when cert is nil.
func newTLSMaterial(domain string, cert *tls.Certificate) (tlsMaterial, error) {
	if cert == nil {
		c, err := newCertificate(domain)
		if err != nil {
			return tlsMaterial{}, err
		}
		cert = &c
	}
	if len(cert.Certificate) == 0 {
		return tlsMaterial{}, fmt.Errorf("%w: the certificate is empty", ErrBadConfig)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tlsMaterial{}, fmt.Errorf("miniserver: certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c := *cert
	c.Leaf = leaf
	base := &tls.Config{Certificates: []tls.Certificate{c}, MinVersion: tls.VersionTLS12}
	direct := base.Clone()
	direct.NextProtos = []string{"xmpp-client"}
	return tlsMaterial{
		certPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		pool:     pool,
		starttls: base,
		direct:   direct,
	}, nil
}
