package xmlsplit

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

const largeHeader = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// largeElement is one message of about n bytes: a long body, an attribute
// value as long, and some nesting, as a hostile peer would send it.
func largeElement(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`<message to='a@b' id='` + strings.Repeat("i", n/4) + `'><body>`)
	for b.Len() < n*3/4 {
		b.WriteString("some text &amp; more text <b>bold</b> ")
	}
	b.WriteString(`</body><x xmlns='urn:example'>`)
	for b.Len() < n {
		b.WriteString(`<y a='1'/>`)
	}
	b.WriteString(`</x></message>`)
	return b.Bytes()
}

// feedChunks feeds the stream header and el in chunks of size step, as
// reads from a socket would deliver them, and returns the events.
func feedChunks(tb testing.TB, s *Splitter, el []byte, step int) []Event {
	tb.Helper()
	var evs []Event
	for i := 0; i < len(el); i += step {
		got, err := s.Feed(el[i:min(i+step, len(el))])
		if err != nil {
			tb.Fatal(err)
		}
		evs = append(evs, got...)
	}
	return evs
}

// BenchmarkLargeElement: one 4 MiB element arriving in 4 KiB reads, cut by
// the splitter and, side by side, read by encoding/xml (RawToken, which
// does the least work of encoding/xml's readers).
func BenchmarkLargeElement(b *testing.B) {
	el := largeElement(4 << 20)
	b.Run("xmlsplit", func(b *testing.B) {
		b.SetBytes(int64(len(el)))
		for b.Loop() {
			var s Splitter
			if _, err := s.Feed([]byte(largeHeader)); err != nil {
				b.Fatal(err)
			}
			if evs := feedChunks(b, &s, el, 4096); len(evs) != 1 {
				b.Fatalf("%d events", len(evs))
			}
		}
	})
	b.Run("encoding-xml", func(b *testing.B) {
		b.SetBytes(int64(len(el)))
		for b.Loop() {
			d := xml.NewDecoder(io.MultiReader(strings.NewReader(largeHeader), &chunkReader{b: el, step: 4096}))
			for {
				if _, err := d.RawToken(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// chunkReader returns b at most step bytes per Read.
type chunkReader struct {
	b    []byte
	step int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.step)], r.b)
	r.b = r.b[n:]
	return n, nil
}

// countingReader counts the bytes encoding/xml reads.
type countingReader struct {
	r io.ByteReader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := c.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// TestLargeElementLinear: a 4 MiB element arriving in small reads costs the
// scanner no more than twice the bytes encoding/xml reads to tokenize it
// (the scanner used to rescan the pending element from its start on every
// read: about len²/(2·step) bytes, some 2 GiB here). The count is of bytes
// examined, not time, so the test is as exact on a loaded machine as on
// an idle one; BenchmarkLargeElement measures the time of both.
func TestLargeElementLinear(t *testing.T) {
	el := largeElement(4 << 20)
	cr := &countingReader{r: bytes.NewReader(append([]byte(largeHeader), el...))}
	d := xml.NewDecoder(cr)
	for {
		if _, err := d.RawToken(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []int{1 << 10, 4 << 10, 64 << 10} {
		var s Splitter
		if _, err := s.Feed([]byte(largeHeader)); err != nil {
			t.Fatal(err)
		}
		before := s.examined
		evs := feedChunks(t, &s, el, step)
		if len(evs) != 1 || len(evs[0].Raw) != len(el) {
			t.Fatalf("step %d: %d events", step, len(evs))
		}
		work := s.examined - before
		if work > 2*cr.n {
			t.Errorf("step %d: the scanner examined %d bytes for an element of %d; encoding/xml read %d", step, work, len(el), cr.n)
		}
		if work < int64(len(el)) {
			t.Errorf("step %d: %d bytes examined of %d: the count misses some", step, work, len(el))
		}
	}
}

// TestLimits: each limit is enforced while the bytes are scanned, with an
// error naming it, and a stream within the limits is cut as usual.
func TestLimits(t *testing.T) {
	deep := func(n int) string {
		return strings.Repeat("<a>", n) + strings.Repeat("</a>", n)
	}
	attrs := func(n int) string {
		var b strings.Builder
		b.WriteString("<m")
		for i := range n {
			fmt.Fprintf(&b, " a%d='%d'", i, i)
		}
		b.WriteString("/>")
		return b.String()
	}
	for _, tc := range []struct {
		name string
		s    Splitter
		ok   string // accepted
		bad  string // refused
		err  error
	}{
		{"size", Splitter{Max: 100}, "<m>" + strings.Repeat("x", 93) + "</m>", "<m>" + strings.Repeat("x", 94) + "</m>", ErrTooLarge},
		{"size of the header", Splitter{Max: 100}, "", "<?xml version='1.0'?>" + strings.Repeat(" ", 100), ErrTooLarge},
		{"depth", Splitter{MaxDepth: 4}, deep(4), deep(5), ErrTooDeep},
		{"depth of an empty element", Splitter{MaxDepth: 2}, "<a><b/></a>", "<a><b><c/></b></a>", ErrTooDeep},
		{"attributes", Splitter{MaxAttrs: 5}, attrs(5), attrs(6), ErrTooManyAttrs},
		{"pending", Splitter{MaxPending: 50}, "<m>" + strings.Repeat("x", 43) + "</m>", "<m>" + strings.Repeat("x", 48), ErrPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{1, 7, 1 << 20} {
				feed := func(in string) ([]Event, error) {
					s := tc.s
					if _, err := s.Feed([]byte(largeHeader)); err != nil && !strings.HasPrefix(in, "<?xml") {
						return nil, err
					}
					if strings.HasPrefix(in, "<?xml") {
						s = tc.s // a header test: no stream yet
					}
					var evs []Event
					for i := 0; i < len(in); i += step {
						got, err := s.Feed([]byte(in[i:min(i+step, len(in))]))
						evs = append(evs, got...)
						if err != nil {
							return evs, err
						}
						if s.Max > 0 && s.Buffered() > s.Max {
							t.Fatalf("step %d: %d bytes buffered, over the limit of %d", step, s.Buffered(), s.Max)
						}
					}
					return evs, nil
				}
				if tc.ok != "" {
					if evs, err := feed(tc.ok); err != nil || len(evs) != 1 {
						t.Fatalf("step %d: within the limit: %d events, %v", step, len(evs), err)
					}
				}
				_, err := feed(tc.bad)
				if !errors.Is(err, tc.err) {
					t.Fatalf("step %d: over the limit: %v, want %v", step, err, tc.err)
				}
				for _, other := range []error{ErrTooLarge, ErrTooDeep, ErrTooManyAttrs, ErrPending, ErrSyntax} {
					if other != tc.err && errors.Is(err, other) {
						t.Fatalf("step %d: %v also says %v", step, err, other)
					}
				}
			}
		})
	}
}

// TestSizeLimitStopsScanning: a piece over the size limit is refused after
// at most Max of its bytes are examined, however many have arrived.
func TestSizeLimitStopsScanning(t *testing.T) {
	s := Splitter{Max: 1000}
	if _, err := s.Feed([]byte(largeHeader)); err != nil {
		t.Fatal(err)
	}
	before := s.examined
	_, err := s.Feed(largeElement(1 << 20))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	if n := s.examined - before; n > 1000 {
		t.Fatalf("%d bytes examined before the refusal, the limit is 1000", n)
	}
}
