package transport

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// An incoming element nested deeper than the tap follows ends the
// connection at once, is reported through OnTapStop with the limit it
// passed, and leaves nothing to resume (its counts are lost).
func TestTapStopReportsTheLimit(t *testing.T) {
	s := startMini(t)
	o := miniOptions(s)
	var mu sync.Mutex
	var stops []string
	o.OnTapStop = func(d Direction, limit string) {
		mu.Lock()
		stops = append(stops, d.String()+" "+limit)
		mu.Unlock()
	}
	c := connect(t, o)
	done := serve(t, c)
	deadline := time.Now().Add(5 * time.Second)
	for !c.SM() || c.ResumeState() == nil {
		if time.Now().After(deadline) {
			t.Fatal("stream management with resumption not enabled within 5 s; the check needs it")
		}
		time.Sleep(5 * time.Millisecond)
	}
	deep := "<message from='localhost' to='" + c.JID.String() + "'>" + strings.Repeat("<a>", maxDepth+1)
	if err := s.SendRaw(c.JID.String(), []byte(deep)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection did not end after an element past the depth limit")
	}
	mu.Lock()
	got := strings.Join(stops, ",")
	mu.Unlock()
	if got != "in depth" {
		t.Errorf("OnTapStop calls = %q, want %q", got, "in depth")
	}
	if r := c.ResumeState(); r != nil {
		t.Errorf("ResumeState = %+v after the tap lost the stream, want nil", r)
	}
}
