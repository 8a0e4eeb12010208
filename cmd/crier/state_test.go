package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"crier/internal/natstest"
	"crier/internal/state"
)

// TestStateMigrate moves a single instance's bbolt store into the [ha] KV
// bucket and back through the command line, with every exit code.
func TestStateMigrate(t *testing.T) {
	ns := natstest.Start(t)
	dir := t.TempDir()
	cfg := write(t, fmt.Sprintf(`[xmpp]
jid = "crier@localhost"
password = "x"
address = "127.0.0.1:5222"

[bot]
state_dir = %q

[nats]
url = %q

[ha]
bucket = "crier-ha"
`, dir, ns.URL()))
	file := filepath.Join(dir, "crier.db")
	st, err := state.Open(file, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	put := func(st state.Store, name, key, value string, at time.Time) {
		t.Helper()
		n, err := st.Namespace(name, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Update(func(tx state.Tx) error {
			if !at.IsZero() {
				return tx.PutExpiring(key, []byte(value), at)
			}
			return tx.Put(key, []byte(value))
		}); err != nil {
			t.Fatal(err)
		}
	}
	ban := time.Now().Add(time.Hour).Round(0)
	put(st, "core", "rooms/extra@conference.localhost", `{"jid":"extra@conference.localhost"}`, time.Time{})
	put(st, "commands", "acl/alice@localhost", "admin", time.Time{})
	put(st, "moderator", "ban/mallory", "spam", ban)

	// The daemon holds the file: refused, exit 1.
	if code, _, errs := runCLI("state", "migrate", "-c", cfg, "--from", "file", "--to", "kv"); code != 1 || !strings.Contains(errs, "stop crier first") {
		t.Fatalf("locked file: exit %d, %q; want 1 and a hint", code, errs)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	_, js := natstest.Connect(t, ns.URL())
	code, out, errs := runCLI("state", "migrate", "-c", cfg, "--from", "file", "--to", "kv", "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run: would copy 3 keys in 3 namespaces") || !strings.Contains(out, "moderator: 1 keys (1 expiring), schema 1") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.KeyValue(ctx, "crier-ha-state"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("the dry run created the bucket (%v)", err)
	}

	if code, out, errs := runCLI("state", "migrate", "-c", cfg, "--from", "file", "--to", "kv"); code != 0 || !strings.Contains(out, "copied 3 keys in 3 namespaces") {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errs)
	}
	kv, err := state.OpenKV(js, "crier-ha-state", state.KVOptions{})
	if err != nil {
		t.Fatal(err)
	}
	get := func(st state.Store, name, key string) (string, time.Time) {
		t.Helper()
		n, err := st.Namespace(name, 1)
		if err != nil {
			t.Fatal(err)
		}
		var v string
		var at time.Time
		_ = n.View(func(tx state.Tx) error {
			b, _ := tx.Get(key)
			v = string(b)
			at, _ = tx.Expiry(key)
			return nil
		})
		return v, at
	}
	if v, _ := get(kv, "commands", "acl/alice@localhost"); v != "admin" {
		t.Fatalf("grant in the bucket: %q", v)
	}
	if v, at := get(kv, "moderator", "ban/mallory"); v != "spam" || !at.Equal(ban) {
		t.Fatalf("timed ban in the bucket: %q until %v, want until %v", v, at, ban)
	}
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}

	// A second run would write over what is there now: refused.
	if code, _, errs := runCLI("state", "migrate", "-c", cfg, "--from", "file", "--to", "kv"); code != 1 || !strings.Contains(errs, "--overwrite") {
		t.Fatalf("second migrate: exit %d, %q; want 1", code, errs)
	}
	if code, out, errs := runCLI("state", "migrate", "-c", cfg, "--from", "file", "--to", "kv", "--overwrite"); code != 0 || !strings.Contains(out, "over 1 keys already there") {
		t.Fatalf("migrate --overwrite: exit %d\n%s%s", code, out, errs)
	}

	// And back, into another file.
	back := filepath.Join(t.TempDir(), "back.db")
	if code, out, errs := runCLI("state", "migrate", "-c", cfg, "--from", "kv", "--to", "file", "--file", back); code != 0 || !strings.Contains(out, "copied 3 keys") {
		t.Fatalf("migrate back: exit %d\n%s%s", code, out, errs)
	}
	bs, err := state.Open(back, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := get(bs, "core", "rooms/extra@conference.localhost"); !strings.Contains(v, "extra@") {
		t.Fatalf("room in the file: %q", v)
	}
	if v, at := get(bs, "moderator", "ban/mallory"); v != "spam" || !at.Equal(ban) {
		t.Fatalf("timed ban in the file: %q until %v", v, at)
	}
	_ = bs.Close()

	// Runtime failures: exit 1.
	if code, _, errs := runCLI("state", "migrate", "-c", cfg, "--from", "file", "--to", "kv", "--file", filepath.Join(dir, "missing.db")); code != 1 || !strings.Contains(errs, "no state file") {
		t.Fatalf("missing source: exit %d, %q", code, errs)
	}
	if code, _, errs := runCLI("state", "migrate", "-c", cfg, "--from", "kv", "--to", "file", "--bucket", "nope", "--file", back); code != 1 || !strings.Contains(errs, "no KV bucket") {
		t.Fatalf("missing bucket: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); err == nil {
		t.Fatal("a missing source file was created")
	}
	// Bad usage: exit 2.
	for _, args := range [][]string{
		{"state"},
		{"state", "frobnicate"},
		{"state", "migrate", "-c", cfg, "--to", "kv"},
		{"state", "migrate", "-c", cfg, "--from", "kv", "--to", "kv"},
		{"state", "migrate", "-c", cfg, "--from", "file", "--to", "s3"},
		{"state", "migrate", "-c", cfg, "--from", "file", "--to", "kv", "extra"},
		{"state", "migrate", "-c", write(t, "[xmpp]\njid = \"crier@localhost\"\npassword = \"x\"\n"), "--from", "file", "--to", "kv"},
	} {
		if code, out, errs := runCLI(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s%s", args, code, out, errs)
		}
	}
	if code, out, _ := runCLI("state", "migrate", "--help"); code != 0 || !strings.Contains(out, "--from") && !strings.Contains(out, "-from") {
		t.Errorf("--help: exit %d\n%s", code, out)
	}
}
