package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/internal/state"
	"crier/plugins"
)

// fakeHost is the bot as the plugin sees it: it records what is sent and
// acknowledges it (at once, later, or with an error) as a test says.
type fakeHost struct {
	plugins.Host
	mu        sync.Mutex
	sent      []plugins.Message
	connected bool
	// sendErr is returned by Send; doneErr given to done.
	sendErr, doneErr error
	// hold keeps done callbacks until release.
	hold    bool
	held    []func(error)
	rooms   map[string]bool
	ns      state.Namespace
	noStore bool
	// sentCh receives every accepted message.
	sentCh chan plugins.Message
}

func newFakeHost() *fakeHost {
	return &fakeHost{connected: true, rooms: map[string]bool{}, sentCh: make(chan plugins.Message, 10000)}
}

func (f *fakeHost) Send(m plugins.Message, done func(error)) error {
	f.mu.Lock()
	if f.sendErr != nil {
		err := f.sendErr
		f.mu.Unlock()
		return err
	}
	f.sent = append(f.sent, m)
	f.sentCh <- m
	if f.hold {
		f.held = append(f.held, done)
		f.mu.Unlock()
		return nil
	}
	err := f.doneErr
	f.mu.Unlock()
	if done != nil {
		go done(err)
	}
	return nil
}

// release calls the held done callbacks with err and stops holding.
func (f *fakeHost) release(err error) {
	f.mu.Lock()
	held := f.held
	f.held, f.hold = nil, false
	f.mu.Unlock()
	for _, d := range held {
		d(err)
	}
}

func (f *fakeHost) set(fn func(f *fakeHost)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeHost) messages() []plugins.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]plugins.Message(nil), f.sent...)
}

func (f *fakeHost) IsRoom(j string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rooms[j]
}

func (f *fakeHost) Status() plugins.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return plugins.Status{Connected: f.connected}
}

func (f *fakeHost) State() (state.Namespace, error) {
	if f.noStore {
		return nil, plugins.ErrNoStore
	}
	if f.ns == nil {
		ns, err := state.NewMemory().Namespace(Name, Schema)
		if err != nil {
			return nil, err
		}
		f.ns = ns
	}
	return f.ns, nil
}

// env is a started plugin with its fake host, registry and log.
type env struct {
	t    *testing.T
	p    *Plugin
	host *fakeHost
	reg  *prometheus.Registry
	logs *crierproc.Buffer
}

const minimal = "[xmpp]\njid = \"crier@example.org\"\npassword = \"x\"\n\n"

// loadWebhooks loads tables (TOML of [[webhooks]]) as crier check does.
func loadWebhooks(t testing.TB, tables string) (Config, plugins.Core, error) {
	t.Helper()
	t.Setenv(config.PasswordEnv, "")
	cfg, err := config.LoadBytes("test.toml", []byte(minimal+tables))
	if err != nil {
		return nil, plugins.Core{}, err
	}
	c, _ := cfg.Plugins[Name].(*Config)
	if c == nil {
		t.Fatalf("no webhooks config decoded")
	}
	return *c, cfg.PluginCore(), nil
}

// start builds and starts the plugin from tables on host (a new fake host
// when nil); it stops when the test ends.
func start(t *testing.T, tables string, host *fakeHost) *env {
	t.Helper()
	c, core, err := loadWebhooks(t, tables)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	pl, ok, err := New(c, core)
	if err != nil || !ok {
		t.Fatalf("New = %v, %v", ok, err)
	}
	if host == nil {
		host = newFakeHost()
	}
	e := &env{t: t, p: pl.(*Plugin), host: host, reg: prometheus.NewRegistry(), logs: &crierproc.Buffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := e.p.Start(context.Background(), plugins.Env{Logger: log, Registerer: e.reg, Host: host}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		host.release(nil)
		_ = e.p.Stop(ctx)
		if t.Failed() {
			t.Logf("plugin log:\n%s", e.logs.String())
		}
	})
	return e
}

// post sends body to path with the header pairs given and returns the
// response.
func (e *env) post(path, body string, header ...string) *httptest.ResponseRecorder {
	e.t.Helper()
	h, ok := e.p.Routes()[path]
	if !ok {
		e.t.Fatalf("no route %s", path)
	}
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// counter reads a counter of the plugin's registry.
func (e *env) counter(name string, labels ...string) float64 {
	e.t.Helper()
	var c prometheus.Counter
	switch name {
	case "requests":
		c = e.p.met.requests.WithLabelValues(labels...)
	case "messages":
		c = e.p.met.messages.WithLabelValues(labels...)
	case "rejected":
		c = e.p.met.rejected.WithLabelValues(labels...)
	case "template_errors":
		c = e.p.met.templateErrors.WithLabelValues(labels...)
	case "batched":
		c = e.p.met.batched.WithLabelValues(labels...)
	default:
		e.t.Fatalf("unknown counter %s", name)
	}
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		e.t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// amPayload builds an Alertmanager payload of alerts given as
// "status:alertname:severity:instance" strings.
func amBody(groupKey string, alerts ...string) string {
	var b bytes.Buffer
	status := "resolved"
	for _, a := range alerts {
		if strings.HasPrefix(a, "firing:") {
			status = "firing"
		}
	}
	b.WriteString(`{"version":"4","groupKey":` + quote(groupKey) + `,"truncatedAlerts":0,"status":"` + status +
		`","receiver":"crier","groupLabels":{},"commonLabels":{},"commonAnnotations":{},` +
		`"externalURL":"http://am.example.org:9093","alerts":[`)
	for i, a := range alerts {
		f := strings.SplitN(a, ":", 4)
		for len(f) < 4 {
			f = append(f, "")
		}
		if i > 0 {
			b.WriteString(",")
		}
		ends := "0001-01-01T00:00:00Z"
		if f[0] == "resolved" {
			ends = "2026-01-02T03:14:05Z"
		}
		b.WriteString(`{"status":"` + f[0] + `","labels":{"alertname":` + quote(f[1]) + `,"severity":` + quote(f[2]) +
			`,"instance":` + quote(f[3]) + `},"annotations":{"summary":` + quote(f[1]+" on "+f[3]) +
			`},"startsAt":"2026-01-02T03:04:05Z","endsAt":"` + ends + `","generatorURL":"http://prom.example.org/graph",` +
			`"fingerprint":` + quote(f[1]+f[3]) + `}`)
	}
	b.WriteString("]}")
	return b.String()
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitFor polls cond for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type stateTx = state.Tx

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
