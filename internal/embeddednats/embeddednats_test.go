package embeddednats

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStartJetStream(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	srv, err := Start(ctx, "nats://127.0.0.1:0", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatalf("JetStream is not usable: %v", err)
	}
	ack, err := js.Publish(ctx, "t.x", []byte("hi"))
	if err != nil || ack.Sequence != 1 {
		t.Fatalf("publish: %v %+v", err, ack)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("store directory %s is empty (%v): JetStream does not use it", dir, err)
	}
	srv.Close()
	srv.Close() // safe twice
	if nc.FlushTimeout(time.Second) == nil && nc.IsConnected() {
		// The client may not have noticed yet; a new connection must fail.
		if c2, err := nats.Connect(srv.ClientURL(), nats.NoReconnect()); err == nil {
			c2.Close()
			t.Fatal("server still accepts connections after Close")
		}
	}
}

func TestOwnTempDirRemoved(t *testing.T) {
	srv, err := Start(context.Background(), "nats://localhost:0", "")
	if err != nil {
		t.Fatal(err)
	}
	dir := srv.dir
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("store directory missing: %v", err)
	}
	if srv.Addr() == "" {
		t.Error("Addr is empty")
	}
	srv.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary store %s not removed: %v", dir, err)
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"nats://0.0.0.0:4222", "nats://192.0.2.1:4222", "nats://example.org:4222"} {
		if _, err := Start(context.Background(), u, t.TempDir()); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Start(%q) = %v, want ErrNotLoopback", u, err)
		}
	}
	for _, u := range []string{"tls://127.0.0.1:4222", "nats://127.0.0.1:99999", "::"} {
		if _, err := Start(context.Background(), u, t.TempDir()); err == nil {
			t.Errorf("Start(%q) succeeded", u)
		}
	}
}

func TestPortInUseFailsFast(t *testing.T) {
	first, err := Start(context.Background(), "nats://127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(first.Close)
	start := time.Now()
	_, err = Start(context.Background(), "nats://"+first.Addr(), t.TempDir())
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second server on %s: %v", first.Addr(), err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s to report a busy port", d)
	}
}

func TestPortZeroIsRandom(t *testing.T) {
	a, err := Start(context.Background(), "nats://127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Start(context.Background(), "nats://127.0.0.1:0", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Addr() == b.Addr() || strings.HasSuffix(a.Addr(), ":4222") {
		t.Errorf("addresses %s and %s", a.Addr(), b.Addr())
	}
}
