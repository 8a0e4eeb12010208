package crierproc

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// StopLimit is how long a daemon still running when its test ends has, after
// SIGTERM, to exit with status 0.
const StopLimit = 10 * time.Second

// logLines is how many of its last output lines a daemon writes to the test
// log when the test failed.
const logLines = 200

// Daemon is one running `crier run -c FILE` process.
type Daemon struct {
	cmd    *exec.Cmd
	path   string
	http   string
	logs   *Buffer
	ended  atomic.Bool // set when the test stops or kills the process itself
	exited chan struct{}
	err    error // valid once exited is closed
}

// Start runs `crier run -c path`, whose [http] table listens on httpAddr,
// with its standard output and error captured. A CRIER_XMPP_PASSWORD in the
// environment is not passed on, so that the password in the file counts.
//
// When the test ends, a process that is still running is stopped with
// SIGTERM and must exit with status 0 within StopLimit, and a process that
// ended on its own, without Stop or Kill, fails the test as well. The last
// lines of its output go to the test log when the test failed.
func Start(tb testing.TB, path, httpAddr string) *Daemon {
	tb.Helper()
	d := &Daemon{path: path, http: httpAddr, logs: &Buffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(Binary(tb), "run", "-c", path)
	d.cmd.Stdout = d.logs
	d.cmd.Stderr = d.logs
	d.cmd.Env = []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CRIER_XMPP_PASSWORD=") {
			d.cmd.Env = append(d.cmd.Env, kv)
		}
	}
	if err := d.cmd.Start(); err != nil {
		tb.Fatalf("start crier: %v", err)
	}
	go func() {
		d.err = d.cmd.Wait()
		close(d.exited)
	}()
	tb.Cleanup(func() {
		var stopErr error
		if !d.ended.Load() {
			stopErr = d.Stop(StopLimit)
		}
		if tb.Failed() || stopErr != nil {
			tb.Logf("crier (pid %d) output:\n%s", d.cmd.Process.Pid, d.LogTail(logLines))
		}
		if stopErr != nil {
			tb.Errorf("crier shutdown: %v", stopErr)
		}
	})
	return d
}

// Run writes a config file with WriteConfig and starts crier on it with
// Start.
func Run(tb testing.TB, x XMPP, tables string) *Daemon {
	tb.Helper()
	path, httpAddr := WriteConfig(tb, x, tables)
	return Start(tb, path, httpAddr)
}

// Rewrite replaces the process's config file with ConfigText(x,
// d.HTTPAddr(), tables); SIGHUP (see Signal) makes the process reload it.
func (d *Daemon) Rewrite(tb testing.TB, x XMPP, tables string) {
	tb.Helper()
	if err := os.WriteFile(d.path, []byte(ConfigText(x, d.http, tables)), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// Path returns the config file the process was started with.
func (d *Daemon) Path() string { return d.path }

// HTTPAddr returns the address of the process's [http] listener.
func (d *Daemon) HTTPAddr() string { return d.http }

// Logs returns everything the process wrote so far.
func (d *Daemon) Logs() string { return d.logs.String() }

// LogTail returns the last n lines the process wrote so far.
func (d *Daemon) LogTail(n int) string {
	lines := strings.SplitAfter(d.logs.String(), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines left out ...]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

// Signal sends sig to the process, such as SIGHUP to make it reload its
// config file.
func (d *Daemon) Signal(sig os.Signal) error { return d.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits, at most limit, for an exit with status 0.
// A process that had already exited is an error too.
func (d *Daemon) Stop(limit time.Duration) error {
	d.ended.Store(true)
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

// Kill ends the process with SIGKILL, as a crash or the OOM killer would,
// and waits for it to be gone.
func (d *Daemon) Kill(tb testing.TB) {
	tb.Helper()
	d.ended.Store(true)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		tb.Fatalf("SIGKILL crier: %v", err)
	}
	select {
	case <-d.exited:
	case <-time.After(10 * time.Second):
		tb.Fatalf("crier still running 10s after SIGKILL")
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

// Running fails the test, with the end of the process's output, if the
// process has exited.
func (d *Daemon) Running(tb testing.TB) {
	tb.Helper()
	if d.Exited() {
		tb.Fatalf("crier exited: %v\n%s", d.err, d.LogTail(100))
	}
}

// ReadyStatus returns the HTTP status of GET /-/ready, or 0 when it could
// not be fetched.
func (d *Daemon) ReadyStatus() int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + d.http + "/-/ready")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// WaitReady polls GET /-/ready until it answers 200, at most limit, and
// fails the test otherwise or when the process exits.
func (d *Daemon) WaitReady(tb testing.TB, limit time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(limit)
	last := 0
	for time.Now().Before(deadline) {
		d.Running(tb)
		if last = d.ReadyStatus(); last == http.StatusOK {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("GET http://%s/-/ready: still %d after %v (0: no answer)\n%s", d.http, last, limit, d.LogTail(100))
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
	return SumMetric(resp.Body, name, labels...)
}

// ReadMetric is Metric that fails the test when /metrics cannot be read.
func (d *Daemon) ReadMetric(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	v, err := d.Metric(name, labels...)
	if err != nil {
		tb.Fatalf("metric %s%q: %v", name, labels, err)
	}
	return v
}

// SumMetric reads the Prometheus text exposition format from r and returns
// the sum of the samples of the metric called name whose labels include
// every name="value" pair of labels (alternating names and values); no such
// sample sums to 0.
func SumMetric(r io.Reader, name string, labels ...string) (float64, error) {
	var want []string
	for i := 0; i+1 < len(labels); i += 2 {
		want = append(want, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sum := 0.0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue
		}
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
		match := true
		for _, w := range want {
			if !strings.Contains(","+lbls+",", ","+w+",") {
				match = false
				break
			}
		}
		if !match {
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
