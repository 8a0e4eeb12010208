package xmlsplit

import (
	"strings"
	"testing"
)

const sample = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>` +
	`<message to='a@b'><body>hi &amp; &lt;there&gt;</body></message> ` +
	`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/></stream:stream>`

func TestSplitEveryCut(t *testing.T) {
	want := []Kind{StreamStart, Element, Space, Element, Element, StreamEnd}
	for step := 1; step <= len(sample); step++ {
		var s Splitter
		var got []Event
		for i := 0; i < len(sample); i += step {
			j := min(i+step, len(sample))
			evs, err := s.Feed([]byte(sample[i:j]))
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			got = append(got, evs...)
		}
		if len(got) != len(want) {
			t.Fatalf("step %d: got %d events, want %d: %+v", step, len(got), len(want), got)
		}
		var joined strings.Builder
		for i, ev := range got {
			if ev.Kind != want[i] {
				t.Fatalf("step %d: event %d is %v, want %v", step, i, ev.Kind, want[i])
			}
			joined.Write(ev.Raw)
		}
		if joined.String() != sample {
			t.Fatalf("step %d: raw bytes do not add up to the input", step)
		}
		if got[1].Name.Local != "message" || got[4].Name.Local != "r" {
			t.Fatalf("names: %v %v", got[1].Name, got[4].Name)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	for _, in := range []string{
		`<stream:stream>hello`,
		`<message/>`,
		`<stream:stream><a></b><c/>`,
	} {
		var s Splitter
		_, err := s.Feed([]byte(in))
		if err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	s := Splitter{Max: 64}
	if _, err := s.Feed([]byte(`<stream:stream><message>` + strings.Repeat("x", 100))); err != ErrTooLarge {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

func FuzzSplit(f *testing.F) {
	f.Add([]byte(sample), 7)
	f.Fuzz(func(t *testing.T, b []byte, step int) {
		if step <= 0 {
			step = 1
		}
		s := Splitter{Max: 1 << 16}
		total := 0
		for i := 0; i < len(b); i += step {
			evs, err := s.Feed(b[i:min(i+step, len(b))])
			for _, ev := range evs {
				total += len(ev.Raw)
			}
			if err != nil {
				return
			}
		}
		if total+s.Buffered() != len(b) {
			t.Fatalf("lost bytes: %d + %d != %d", total, s.Buffered(), len(b))
		}
	})
}
