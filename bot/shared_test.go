package bot

import (
	"errors"
	"fmt"
	"testing"

	"crier/internal/natstest"
	"crier/internal/state"
	"crier/plugins"
)

// TestSharedState: Host.SharedState opens a plugin's namespace in a KV
// bucket over [nats], the same store for each call, shared with another
// bot naming the bucket; without NATS it is ErrUnsupported.
func TestSharedState(t *testing.T) {
	srv := natstest.Start(t)
	newBot := func(nats string) *Bot {
		b, err := New(loadConfig(t, `address = "127.0.0.1:1"`, nats), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.closeStore)
		return b
	}
	table := fmt.Sprintf("[nats]\nurl = %q\n", srv.URL())
	one, two := newBot(table), newBot(table)
	h1 := &pluginHost{b: one, rp: &runningPlugin{name: "moderator"}}
	h2 := &pluginHost{b: two, rp: &runningPlugin{name: "moderator"}}
	ns, err := h1.SharedState("crier-shared")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Update(func(tx state.Tx) error { return tx.Put("list|x", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if _, err := h1.SharedState("crier-shared"); err != nil || len(one.shared) != 1 {
		t.Fatalf("second call: %v, %d stores", err, len(one.shared))
	}
	other, err := h2.SharedState("crier-shared")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	_ = other.View(func(tx state.Tx) error { v, _ := tx.Get("list|x"); got = string(v); return nil })
	if got != "v" {
		t.Fatalf("the other bot reads %q", got)
	}
	if other.Name() != "moderator" {
		t.Errorf("namespace %q", other.Name())
	}
	none := &pluginHost{b: newBot(""), rp: &runningPlugin{name: "moderator"}}
	if _, err := none.SharedState("crier-shared"); !errors.Is(err, plugins.ErrUnsupported) {
		t.Fatalf("without NATS: %v", err)
	}
}
