package xmlsplit

import (
	"bytes"
	"errors"
	"fmt"
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
	if _, err := s.Feed([]byte(`<stream:stream><message>` + strings.Repeat("x", 100))); !errors.Is(err, ErrTooLarge) {
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

// TestNamespacesOnly: with NamespacesOnly the attributes of a piece are cut
// down to its namespace declarations, on the stream header and on
// elements alike; without it every attribute stays.
func TestNamespacesOnly(t *testing.T) {
	in := `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>` +
		`<message to='a@example.org' type='chat' id='1'><body>hi</body></message>` +
		`<sm:a xmlns:sm='urn:xmpp:sm:3' h='3'/>`
	for _, nsOnly := range []bool{false, true} {
		s := Splitter{NamespacesOnly: nsOnly}
		evs, err := s.Feed([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 3 {
			t.Fatalf("%d events, want 3", len(evs))
		}
		var got [][]string
		for _, ev := range evs {
			var names []string
			for _, a := range ev.Attr {
				n := a.Name.Local
				if a.Name.Space != "" {
					n = a.Name.Space + ":" + n
				}
				names = append(names, n+"="+a.Value)
			}
			got = append(got, names)
		}
		want := [][]string{
			{"xmlns=jabber:client", "xmlns:stream=http://etherx.jabber.org/streams", "to=example.org", "version=1.0"},
			{"to=a@example.org", "type=chat", "id=1"},
			{"xmlns:sm=urn:xmpp:sm:3", "h=3"},
		}
		if nsOnly {
			want = [][]string{
				{"xmlns=jabber:client", "xmlns:stream=http://etherx.jabber.org/streams"},
				nil,
				{"xmlns:sm=urn:xmpp:sm:3"},
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("NamespacesOnly=%v: attributes %v, want %v", nsOnly, got, want)
		}
		if evs[1].Name.Local != "message" || evs[2].Name.Space != "sm" || evs[2].Name.Local != "a" {
			t.Errorf("names %v %v", evs[1].Name, evs[2].Name)
		}
	}
}

// BenchmarkFeedStanza: the cost of watching one ordinary stanza go by, as
// the transport's tap does in each direction.
func BenchmarkFeedStanza(b *testing.B) {
	stanza := []byte(`<message to='lobby@conference.example.org' from='alice@example.org/phone' type='groupchat' id='m-123456'><body>!ping</body></message>`)
	for _, nsOnly := range []bool{false, true} {
		b.Run(fmt.Sprintf("namespaces-only=%v", nsOnly), func(b *testing.B) {
			s := Splitter{NamespacesOnly: nsOnly}
			if _, err := s.Feed([]byte(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`)); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if evs, err := s.Feed(stanza); err != nil || len(evs) != 1 {
					b.Fatal(len(evs), err)
				}
			}
		})
	}
}

// FuzzSplitCutsAgree: the scanner keeps its state between Feeds, so cutting
// the input anywhere gives the same pieces, and the same verdict, as
// feeding it at once.
func FuzzSplitCutsAgree(f *testing.F) {
	f.Add([]byte(sample), 3)
	f.Add([]byte("<stream:stream a='1'><m x=\"&lt;&amp;\"><![CDATA[<x/>]]]]><!-- c --->--><b/></m><?pi x??><n/></stream:stream>"), 1)
	f.Fuzz(func(t *testing.T, b []byte, step int) {
		if step <= 0 || step > len(b) {
			step = 1
		}
		whole := Splitter{Max: 512, MaxDepth: 8, MaxAttrs: 8}
		want, wantErr := whole.Feed(b)
		cut := Splitter{Max: 512, MaxDepth: 8, MaxAttrs: 8}
		var got []Event
		var gotErr error
		for i := 0; i < len(b) && gotErr == nil; i += step {
			var evs []Event
			evs, gotErr = cut.Feed(b[i:min(i+step, len(b))])
			got = append(got, evs...)
		}
		if (wantErr == nil) != (gotErr == nil) {
			t.Fatalf("whole: %v; cut every %d bytes: %v\n%q", wantErr, step, gotErr, b)
		}
		// Whitespace comes out as it arrives: cut, one run may be several
		// pieces.
		want, got = joinSpace(want), joinSpace(got)
		if len(got) != len(want) {
			t.Fatalf("whole: %d pieces; cut every %d bytes: %d\n%q", len(want), step, len(got), b)
		}
		for i := range want {
			if got[i].Kind != want[i].Kind || !bytes.Equal(got[i].Raw, want[i].Raw) || got[i].Name != want[i].Name || len(got[i].Attr) != len(want[i].Attr) {
				t.Fatalf("piece %d: %v %q, cut: %v %q", i, want[i].Kind, want[i].Raw, got[i].Kind, got[i].Raw)
			}
		}
		if wantErr == nil && whole.Buffered() != cut.Buffered() {
			t.Fatalf("buffered %d, cut %d", whole.Buffered(), cut.Buffered())
		}
	})
}

// joinSpace merges runs of Space events.
func joinSpace(evs []Event) []Event {
	var out []Event
	for _, ev := range evs {
		if n := len(out); n > 0 && ev.Kind == Space && out[n-1].Kind == Space {
			out[n-1].Raw = append(out[n-1].Raw, ev.Raw...)
			continue
		}
		out = append(out, ev)
	}
	return out
}
