package pluginstest

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"testing"
	"time"

	"crier/internal/state"
	"crier/plugins"
)

func TestNamespaceTransactions(t *testing.T) {
	n := NewNamespace("x", 1)
	if err := n.Update(func(tx state.Tx) error {
		if err := tx.Put("b", []byte("2")); err != nil {
			return err
		}
		return tx.Put("a", []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := n.Update(func(tx state.Tx) error {
		_ = tx.Put("c", []byte("3"))
		_ = tx.Delete("a")
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update error %v", err)
	}
	if got := n.Keys(""); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("a failed transaction left %q", got)
	}
	err := n.View(func(tx state.Tx) error {
		var keys []string
		_ = tx.ForEach("", func(k string, _ []byte) error { keys = append(keys, k); return nil })
		if !slices.Equal(keys, []string{"a", "b"}) {
			t.Errorf("ForEach order %q", keys)
		}
		return tx.Put("z", nil)
	})
	if !errors.Is(err, state.ErrReadOnly) {
		t.Errorf("Put in View: %v", err)
	}
	if err := n.Update(func(tx state.Tx) error { return tx.Put("", nil) }); !errors.Is(err, state.ErrBadKey) {
		t.Errorf("empty key: %v", err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_ = n.Update(func(tx state.Tx) error { return tx.PutExpiring("e", []byte("v"), at) })
	var fired []string
	n.OnExpire(func(k string, v []byte) { fired = append(fired, k+"="+string(v)) })
	n.Expire(at.Add(-time.Second))
	if len(fired) != 0 {
		t.Fatal("fired early")
	}
	n.Expire(at)
	if !slices.Equal(fired, []string{"e=v"}) || slices.Contains(n.Keys(""), "e") {
		t.Fatalf("expiry fired %q, keys %q", fired, n.Keys(""))
	}
}

func TestHostRecordsAndDispatches(t *testing.T) {
	h := New()
	done := make(chan error, 1)
	if err := h.Send(plugins.Message{To: "a@example.org", Body: "hi"}, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("done(%v)", err)
	}
	if m := h.WaitSent(t, 1, time.Second); m[0].Body != "hi" {
		t.Fatalf("sent %+v", m)
	}
	h.SendErr = plugins.ErrBusy
	if err := h.Send(plugins.Message{}, func(error) { t.Error("done called after an error") }); !errors.Is(err, plugins.ErrBusy) {
		t.Fatalf("SendErr: %v", err)
	}
	name := xml.Name{Space: "urn:test", Local: "q"}
	h.HandleIQ("get", name, "urn:test", func(_ context.Context, iq plugins.IQ) ([]byte, error) {
		return []byte("<r from='" + iq.From + "'/>"), nil
	})
	out, err := h.IQ(context.Background(), "get", "b@example.org/x", []byte(`<q xmlns="urn:test"/>`))
	if err != nil || string(out) != "<r from='b@example.org/x'/>" {
		t.Fatalf("IQ = %s, %v", out, err)
	}
	if _, err := h.IQ(context.Background(), "set", "b@example.org/x", []byte(`<q xmlns="urn:test"/>`)); err == nil {
		t.Fatal("IQ of an unregistered type answered")
	}
	if !slices.Equal(h.Features(), []string{"urn:test"}) {
		t.Fatalf("features %q", h.Features())
	}
	h.AddRoom(plugins.RoomInfo{JID: "r@conference.example.org"})
	h.AddOccupant(plugins.Occupant{Room: "r@conference.example.org", Nick: "n", Role: "visitor"})
	h.AddOccupant(plugins.Occupant{Room: "r@conference.example.org", Nick: "n", Role: "moderator"})
	if o, ok := h.Occupant("r@conference.example.org", "n"); !ok || o.Role != "moderator" || len(h.Occupants("r@conference.example.org")) != 1 {
		t.Fatalf("occupant %+v %v", o, ok)
	}
	if !h.IsRoom("r@conference.example.org") || h.LeaveRoom("r@conference.example.org") != nil || h.IsRoom("r@conference.example.org") {
		t.Fatal("rooms")
	}
	if err := h.Publish("s", nil); !errors.Is(err, plugins.ErrUnsupported) {
		t.Fatalf("Publish without a publisher: %v", err)
	}
}
