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

// FuzzComponentOutScan feeds written bytes, cut anywhere, to the scanner
// that moves a component's stanzas into the stream's namespace: it must
// not panic, only ever take bytes out, and give the same output however
// the input is cut.
func FuzzComponentOutScan(f *testing.F) {
	f.Add([]byte(`<message xmlns="jabber:client" to="a@b"><body>x</body></message><iq xmlns='jabber:client' id="1"/>`), 7)
	f.Add([]byte(`<presence xmlns="jabber:cl`), 3)
	f.Fuzz(func(t *testing.T, b []byte, step int) {
		if step <= 0 || step > len(b) {
			step = len(b) + 1
		}
		var whole outScan
		want := whole.feed(b, nil)
		want = append(want, whole.hold...)
		var cut outScan
		var got []byte
		for i := 0; i < len(b); i += step {
			got = cut.feed(b[i:min(i+step, len(b))], got)
		}
		got = append(got, cut.hold...)
		if string(got) != string(want) {
			t.Fatalf("cut every %d bytes:\n got %q\nwant %q", step, got, want)
		}
		if len(got) > len(b) {
			t.Fatalf("output %d bytes from %d", len(got), len(b))
		}
	})
}
