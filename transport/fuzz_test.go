package transport

import (
	"encoding/xml"
	"log/slog"
	"net"
	"testing"
)

// FuzzObserveIn feeds server bytes, cut anywhere, to the incoming side of
// the tap: whatever arrives, it must not panic, and every element it
// reports must be one the tap saw whole.
func FuzzObserveIn(f *testing.F) {
	f.Add([]byte("<stream:stream xmlns='jabber:client' xmlns:stream='"+nsStream+"'><stream:features><mechanisms xmlns='"+nsSASL+
		"'><mechanism>PLAIN</mechanism></mechanisms></stream:features><failure xmlns='"+nsSASL+"'><not-authorized/></failure>"), 5)
	f.Add([]byte("<stream:stream><success xmlns='"+nsSASL+"'/><stream:stream><iq/></stream:stream>"), 3)
	f.Fuzz(func(t *testing.T, b []byte, step int) {
		if step <= 0 || step > len(b) {
			step = len(b) + 1
		}
		c1, c2 := net.Pipe()
		defer c1.Close()
		defer c2.Close()
		n := 0
		tc := newTapConn(c1, TapFunc(func(dir Direction, name xml.Name, raw []byte) {
			if dir != In || len(raw) == 0 || name.Local == "" {
				t.Fatalf("bad event %v %v %q", dir, name, raw)
			}
			n += len(raw)
		}), slog.New(slog.DiscardHandler))
		for i := 0; i < len(b); i += step {
			tc.observeIn(b[i:min(i+step, len(b))])
		}
		if n > len(b) {
			t.Fatalf("reported %d bytes of %d", n, len(b))
		}
		_ = tc.obs.saslFailure()
		_ = tc.obs.offered()
	})
}
