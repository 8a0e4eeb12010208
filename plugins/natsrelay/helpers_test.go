package natsrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"crier/internal/config"
	"crier/internal/embeddednats"
	"crier/plugins"
)

// errLost is the outcome the fake bot reports for a stanza it lost.
var errLost = errors.New("test: stanza lost")

// startNATS runs an in-process NATS server with JetStream on a random
// loopback port.
func startNATS(t *testing.T) *embeddednats.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	srv, err := embeddednats.Start(ctx, "nats://127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// connect returns a test client of srv.
func connect(t *testing.T, srv *embeddednats.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// loadConfig loads a minimal config with the given [nats] table, whose
// URL is srv's.
func loadConfig(t *testing.T, url, natsTOML string) *config.Config {
	t.Helper()
	t.Setenv(config.PasswordEnv, "")
	src := "[xmpp]\njid = \"crier@example.org\"\npassword = \"x\"\n\n" +
		"[[rooms]]\njid = \"joined@rooms.example.org\"\n\n" +
		"[nats]\nurl = \"" + url + "\"\n" + natsTOML
	cfg, err := config.LoadBytes("test.toml", []byte(src))
	if err != nil {
		t.Fatalf("config:\n%v\n%s", err, src)
	}
	return cfg
}

// fakeBot is a plugins.Env whose Send records messages and reports their
// outcome later, as the bot's outbox does.
type fakeBot struct {
	mu   sync.Mutex
	sent []plugins.Message
	// busyUntil makes Send refuse with ErrBusy until then (and then, as
	// the Host promises, done is never called).
	busyUntil time.Time
	// alwaysBusy refuses every Send.
	alwaysBusy bool
	// hold keeps done callbacks in held instead of calling them.
	hold bool
	// delay is how long a send takes to be acknowledged (1ms if zero).
	delay time.Duration
	held  []func(error)
	// outcome gives the result of the n-th send (0-based) of a message;
	// nil means success.
	outcome  func(m plugins.Message, n int) error
	attempts map[string]int
	busyHits int
	plugin   *Plugin
	// standby makes Speaking false, as on an [ha] standby; offline makes
	// Status say there is no XMPP session.
	standby atomic.Bool
	offline atomic.Bool
	// logs, when set, receives the plugin's log.
	logs *syncBuffer
	reg  *prometheus.Registry
}

func newFakeBot() *fakeBot {
	return &fakeBot{attempts: map[string]int{}, reg: prometheus.NewRegistry()}
}

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (f *fakeBot) env() plugins.Env {
	log := slog.New(slog.DiscardHandler)
	if f.logs != nil {
		log = slog.New(slog.NewTextHandler(f.logs, nil))
	}
	return plugins.Env{
		Logger:     log.With("plugin", Name),
		Registerer: f.reg,
		Host:       fakeHost{f: f},
	}
}

// fakeHost is the part of plugins.Host the relay uses; the rest panics.
type fakeHost struct {
	plugins.Host
	f *fakeBot
}

func (h fakeHost) Send(m plugins.Message, done func(error)) error { return h.f.send(m, done) }

func (h fakeHost) Speaking() bool { return !h.f.standby.Load() }

func (h fakeHost) Status() plugins.Status { return plugins.Status{Connected: !h.f.offline.Load()} }

func (f *fakeBot) send(m plugins.Message, done func(error)) error {
	f.mu.Lock()
	if f.alwaysBusy || time.Now().Before(f.busyUntil) {
		f.busyHits++
		f.mu.Unlock()
		return plugins.ErrBusy
	}
	f.sent = append(f.sent, m)
	key := m.To + "|" + m.OriginID
	n := f.attempts[key]
	f.attempts[key]++
	var err error
	if f.outcome != nil {
		err = f.outcome(m, n)
	}
	if f.hold {
		f.held = append(f.held, done)
		f.mu.Unlock()
		return nil
	}
	delay := max(f.delay, time.Millisecond)
	f.mu.Unlock()
	go func() {
		time.Sleep(delay)
		done(err)
	}()
	return nil
}

// messages returns a copy of what was sent.
func (f *fakeBot) messages() []plugins.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]plugins.Message(nil), f.sent...)
}

// release calls every held done callback with err.
func (f *fakeBot) release(err error) int {
	f.mu.Lock()
	held := f.held
	f.held = nil
	f.mu.Unlock()
	for _, d := range held {
		d(err)
	}
	return len(held)
}

// publishEvent hands ev to the started plugin, as the bot does.
func (f *fakeBot) publishEvent(ev plugins.Event) {
	f.mu.Lock()
	p := f.plugin
	f.mu.Unlock()
	if p != nil {
		p.Observe(&ev)
	}
}

// startPlugin builds and starts the plugin for cfg with bot's Env.
func startPlugin(t *testing.T, cfg *config.Config, bot *fakeBot) *Plugin {
	t.Helper()
	pl, enabled, err := plugins.BuildOne(Name, cfg.Plugins[Name], pluginsCore(cfg))
	if err != nil || !enabled {
		t.Fatalf("New: enabled=%v err=%v", enabled, err)
	}
	p := pl.(*Plugin)
	bot.mu.Lock()
	bot.plugin = p
	bot.mu.Unlock()
	if err := p.Start(context.Background(), bot.env()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Stop(ctx)
	})
	waitFor(t, 10*time.Second, "plugin ready", func() bool { ok, _ := p.Ready(); return ok })
	return p
}

// waitFor polls cond every 5ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

// metricValue returns the value of the counter or gauge name with labels
// (name=value pairs) from reg; 0 when it has not been written.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// consumerInfo returns the durable's state.
func consumerInfo(t *testing.T, js jetstream.JetStream, stream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// jsPublish publishes through JetStream, with a Nats-Msg-Id when id is set.
func jsPublish(t *testing.T, js jetstream.JetStream, subject, data, id string) *jetstream.PubAck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var opts []jetstream.PublishOpt
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	ack, err := js.Publish(ctx, subject, []byte(data), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// bodies lists the bodies of msgs.
func bodies(msgs []plugins.Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteString(" | ")
		}
		fmt.Fprintf(&b, "%s→%s(%s)", m.Body, m.To, m.Type)
	}
	return b.String()
}

// pluginsCore is what the bot hands plugins of cfg.
func pluginsCore(cfg *config.Config) plugins.Core {
	return cfg.PluginCore()
}
