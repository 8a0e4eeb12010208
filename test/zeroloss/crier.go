package zeroloss

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	crierBin  string
	buildErr  error
)

// Binary builds crier/cmd/crier once per test binary and returns its path.
// It fails the test when the build fails.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crier-zeroloss-bin-")
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

// XMPP is the [xmpp] section of a crier config.
type XMPP struct {
	// JID and Password are crier's account.
	JID, Password string
	// Resource is the resource crier binds; "zeroloss" when empty, so that
	// other crier processes logged in to the same account do not replace it.
	Resource string
	// Transport is "tcp" (the default) or "bosh".
	Transport string
	// Address and TLS are the TCP server address and TLS mode ("starttls"
	// when empty).
	Address, TLS string
	// BOSHURL is the BOSH endpoint, for Transport "bosh".
	BOSHURL string
	// CAFile is a PEM file with the server's certificate.
	CAFile string
}

// Relay is one [[nats.relay]] of a crier config. Empty fields are left
// out, so crier's defaults apply.
type Relay struct {
	Subject       string
	To            []string
	Type          string
	Format        string
	Stream        string
	Durable       string
	DeadLetter    string
	MaxBytes      int
	MaxAckPending int
	AckWait       string
	NakDelay      string
}

// Config is what the tests vary in crier's config file.
type Config struct {
	XMPP XMPP
	// NATSURL is the NATS server crier reads from.
	NATSURL string
	// DeadLetter is nats.dead_letter; empty leaves crier's default.
	DeadLetter string
	Relays     []Relay
}

// WriteConfig writes cfg as a crier config file in a new temporary
// directory and returns its path and the loopback address of its [http]
// listener.
func WriteConfig(t testing.TB, cfg Config) (path, httpAddr string) {
	t.Helper()
	httpAddr = FreePort(t)
	x := cfg.XMPP
	if x.Resource == "" {
		x.Resource = "zeroloss"
	}
	if x.Transport == "" {
		x.Transport = "tcp"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[xmpp]\njid = %q\npassword = %q\nresource = %q\ntransport = %q\n", x.JID, x.Password, x.Resource, x.Transport)
	if x.Transport == "bosh" {
		fmt.Fprintf(&b, "bosh_url = %q\n", x.BOSHURL)
	} else {
		if x.TLS == "" {
			x.TLS = "starttls"
		}
		fmt.Fprintf(&b, "address = %q\ntls = %q\n", x.Address, x.TLS)
	}
	if x.CAFile != "" {
		fmt.Fprintf(&b, "ca_file = %q\n", x.CAFile)
	}
	fmt.Fprintf(&b, "\n[http]\nlisten = %q\n\n[nats]\nurl = %q\n", httpAddr, cfg.NATSURL)
	if cfg.DeadLetter != "" {
		fmt.Fprintf(&b, "dead_letter = %q\n", cfg.DeadLetter)
	}
	for _, r := range cfg.Relays {
		fmt.Fprintf(&b, "\n[[nats.relay]]\nsubject = %q\nto = [", r.Subject)
		for i, to := range r.To {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q", to)
		}
		b.WriteString("]\n")
		for _, kv := range []struct{ k, v string }{{"type", r.Type}, {"format", r.Format}, {"stream", r.Stream},
			{"durable", r.Durable}, {"dead_letter", r.DeadLetter}, {"ack_wait", r.AckWait}, {"nak_delay", r.NakDelay}} {
			if kv.v != "" {
				fmt.Fprintf(&b, "%s = %q\n", kv.k, kv.v)
			}
		}
		if r.MaxBytes > 0 {
			fmt.Fprintf(&b, "max_bytes = %d\n", r.MaxBytes)
		}
		if r.MaxAckPending > 0 {
			fmt.Fprintf(&b, "max_ack_pending = %d\n", r.MaxAckPending)
		}
	}
	path = filepath.Join(t.TempDir(), "crier.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, httpAddr
}

// WriteFile writes data to a new file called name in a new temporary
// directory and returns its path.
func WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// FreePort returns a loopback host:port nothing listens on right now.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// logBuffer keeps a process's output, safe for one writer and many readers.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Daemon is one running `crier run -c FILE` process.
type Daemon struct {
	cmd    *exec.Cmd
	logs   *logBuffer
	http   string
	exited chan struct{}
	err    error // valid once exited is closed
}

// Start runs `crier run -c path` with its [http] listener at httpAddr. When
// the test ends a still running process is stopped with SIGTERM and must
// exit with status 0 within 10 seconds; its output goes to the test log
// when the test failed.
func Start(t testing.TB, path, httpAddr string) *Daemon {
	t.Helper()
	d := &Daemon{logs: &logBuffer{}, http: httpAddr, exited: make(chan struct{})}
	d.cmd = exec.Command(Binary(t), "run", "-c", path)
	d.cmd.Stdout = d.logs
	d.cmd.Stderr = d.logs
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRIER_XMPP_PASSWORD=") {
			env = append(env, kv)
		}
	}
	d.cmd.Env = env
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start crier: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		var stopErr error
		select {
		case <-d.exited:
		default:
			stopErr = d.Stop(10 * time.Second)
		}
		if t.Failed() || stopErr != nil {
			t.Logf("crier (pid %d) output:\n%s", d.cmd.Process.Pid, tail(d.logs.String(), 200))
		}
		if stopErr != nil {
			t.Errorf("crier shutdown: %v", stopErr)
		}
	})
	return d
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines left out ...]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

// Logs returns everything the process wrote so far.
func (d *Daemon) Logs() string { return d.logs.String() }

// Stop sends SIGTERM and waits, at most limit, for an exit with status 0.
func (d *Daemon) Stop(limit time.Duration) error {
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

// Kill ends the process with SIGKILL, as a crash or the OOM killer would,
// and waits for it to be gone.
func (d *Daemon) Kill(t testing.TB) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL crier: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("crier still running 10s after SIGKILL")
	}
}

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// WaitReady polls GET /-/ready until it answers 200, at most limit, and
// fails the test otherwise or when the process exits.
func (d *Daemon) WaitReady(t testing.TB, limit time.Duration) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	status := "no answer"
	for time.Now().Before(deadline) {
		if d.Exited() {
			t.Fatalf("crier exited: %v\n%s", d.err, tail(d.Logs(), 100))
		}
		resp, err := c.Get("http://" + d.http + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			status = resp.Status
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("GET http://%s/-/ready: %s after %v\n%s", d.http, status, limit, tail(d.Logs(), 100))
}

// Metric returns the sum of the samples of the metric called name whose
// labels include every name="value" pair of labels (alternating names and
// values), read from GET /metrics; a metric crier has not exported yet
// counts as 0.
func (d *Daemon) Metric(name string, labels ...string) (float64, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + d.http + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var want []string
	for i := 0; i+1 < len(labels); i += 2 {
		want = append(want, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var lbls string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			lbls, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // a longer metric name
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(","+lbls+",", ","+w+",") {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}
