package crierproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	crierBin  string
	buildErr  error
)

// Binary builds crier/cmd/crier once per test binary and returns the path
// of the executable. It fails the test when the build fails.
func Binary(tb testing.TB) string {
	tb.Helper()
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
		tb.Fatalf("cannot build the crier binary: %v", buildErr)
	}
	return crierBin
}

// XMPP is the [xmpp] table of a crier config. Empty fields other than
// Transport and TLS are left out of the file.
type XMPP struct {
	// JID and Password are crier's account.
	JID, Password string
	// Resource is the resource crier binds.
	Resource string
	// Transport is "tcp" (the default), "bosh", "websocket" or
	// "component" (JID the component's domain, Password its secret,
	// Address its port).
	Transport string
	// Address and TLS are the TCP server address and TLS mode ("starttls"
	// when empty); they are written for the TCP transport only.
	Address, TLS string
	// BOSHURL is the BOSH endpoint; it is written for Transport "bosh" only.
	BOSHURL string
	// WebSocketURL is the WebSocket endpoint; it is written for Transport
	// "websocket" only.
	WebSocketURL string
	// CAFile is a PEM file with the server's certificate.
	CAFile string
	// Keepalive and KeepaliveTimeout are durations such as "5s".
	Keepalive, KeepaliveTimeout string
	// NoSM writes stream_management = false.
	NoSM bool
	// From is the component's own address (Transport "component").
	From string
}

// TOML returns x as an [xmpp] table, ending with a blank line.
func (x XMPP) TOML() string {
	if x.Transport == "" {
		x.Transport = "tcp"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[xmpp]\njid = %q\npassword = %q\n", x.JID, x.Password)
	if x.Resource != "" {
		fmt.Fprintf(&b, "resource = %q\n", x.Resource)
	}
	fmt.Fprintf(&b, "transport = %q\n", x.Transport)
	switch x.Transport {
	case "bosh":
		fmt.Fprintf(&b, "bosh_url = %q\n", x.BOSHURL)
	case "websocket":
		fmt.Fprintf(&b, "websocket_url = %q\n", x.WebSocketURL)
	default:
		if x.TLS == "" {
			x.TLS = "starttls"
		}
		fmt.Fprintf(&b, "address = %q\ntls = %q\n", x.Address, x.TLS)
	}
	for _, kv := range []struct{ k, v string }{{"ca_file", x.CAFile}, {"keepalive", x.Keepalive},
		{"keepalive_timeout", x.KeepaliveTimeout}, {"from", x.From}} {
		if kv.v != "" {
			fmt.Fprintf(&b, "%s = %q\n", kv.k, kv.v)
		}
	}
	if x.NoSM {
		b.WriteString("stream_management = false\n")
	}
	b.WriteString("\n")
	return b.String()
}

// ConfigText returns a crier config: the [xmpp] table of x, an [http] table
// listening on httpAddr, and then tables, which holds any further TOML
// tables verbatim.
func ConfigText(x XMPP, httpAddr, tables string) string {
	return x.TOML() + fmt.Sprintf("[http]\nlisten = %q\n\n", httpAddr) + tables
}

// WriteConfig writes ConfigText(x, httpAddr, tables) to a file called
// crier.toml in a new temporary directory, with httpAddr a free loopback
// port, and returns the file's path and httpAddr.
func WriteConfig(tb testing.TB, x XMPP, tables string) (path, httpAddr string) {
	tb.Helper()
	httpAddr = FreePort(tb)
	return WriteFile(tb, "crier.toml", []byte(ConfigText(x, httpAddr, tables))), httpAddr
}

// WriteFile writes data to a new file called name in a new temporary
// directory and returns its path.
func WriteFile(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// FreePort returns a loopback host:port nothing listens on right now.
func FreePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
