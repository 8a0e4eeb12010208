package bot

import (
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	cases := map[string]string{
		"plain":                 "plain",
		"a\x00b\x1bc":           "abc",
		"tab\tnl\ncr\r":         "tab\tnl\ncr\r",
		"bad\xffutf8\xc3":       "badutf8",
		"keep \ufffd real":      "keep \ufffd real",
		"nonchar \uffff\ufffe!": "nonchar !",
		"emoji 👍🏽":              "emoji 👍🏽",
	}
	for in, want := range cases {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSplitBody(t *testing.T) {
	long := strings.Repeat("héllo wörld ", 40) + strings.Repeat("👍🏽", 30) + strings.Repeat("e\u0301", 50)
	for _, max := range []int{16, 17, 18, 19, 20, 33, 100, 301} {
		parts := splitBody(long, max)
		joined := strings.Join(parts, "")
		// Only the spaces/newlines at cuts may go.
		if strings.ReplaceAll(joined, " ", "") != strings.ReplaceAll(long, " ", "") {
			t.Fatalf("max %d: content lost", max)
		}
		for _, p := range parts {
			if len(p) > max {
				t.Fatalf("max %d: part of %d bytes", max, len(p))
			}
			if !utf8.ValidString(p) {
				t.Fatalf("max %d: invalid UTF-8 part %q", max, p)
			}
			r, _ := utf8.DecodeRuneInString(p)
			if extends(r) {
				t.Fatalf("max %d: part starts with an extending rune %q", max, p)
			}
		}
	}
	if got := splitBody("short", 100); len(got) != 1 || got[0] != "short" {
		t.Fatalf("short body split: %q", got)
	}
	if got := splitBody("first line here\nsecond line", 20); got[0] != "first line here" {
		t.Fatalf("did not prefer the newline: %q", got)
	}
}

func FuzzSplitBody(f *testing.F) {
	f.Add("héllo wörld 👍🏽 e\u0301", 20)
	f.Fuzz(func(t *testing.T, s string, max int) {
		max = max%500 + 16
		if max < 16 {
			max = 16
		}
		s = cleanText(s)
		parts := splitBody(s, max)
		n := 0
		for _, p := range parts {
			if len(p) > max {
				t.Fatalf("part of %d > %d", len(p), max)
			}
			n += len(p)
		}
		if n > len(s) {
			t.Fatalf("parts longer than the input")
		}
	})
}

// TestCleanTextBoundaries checks every edge of XML 1.0's Char production
// one character at a time, so that moving any bound by one is caught.
func TestCleanTextBoundaries(t *testing.T) {
	for r := rune(0); r < 0x20; r++ {
		in := "a" + string(r) + "b"
		want := "ab"
		if r == '\t' || r == '\n' || r == '\r' {
			want = in
		}
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q (U+%04X)", in, got, want, r)
		}
	}
	for _, r := range []rune{0x20, 0x7F, 0xD7FF, 0xE000, 0xFFFD, 0x10000, 0x10FFFF} {
		in := "a" + string(r) + "b"
		if got := cleanText(in); got != in {
			t.Errorf("cleanText(%q) = %q: U+%04X must be kept", in, got, r)
		}
	}
	for _, r := range []rune{0xFFFE, 0xFFFF} {
		in := "a" + string(r) + "b"
		if got := cleanText(in); got != "ab" {
			t.Errorf("cleanText(%q) = %q: U+%04X must be dropped", in, got, r)
		}
	}
	// Surrogates cannot be encoded in valid UTF-8; their three-byte forms
	// (as CESU-8 or WTF-8 would write them), lone or paired, are invalid
	// bytes and go, as do other invalid sequences.
	for in, want := range map[string]string{
		"a\xed\xa0\x80b":             "ab", // U+D800, a lone high surrogate
		"a\xed\xbf\xbfb":             "ab", // U+DFFF, a lone low surrogate
		"a\xed\xa0\xbd\xed\xb8\x80b": "ab", // a surrogate pair written separately
		"a\xc0\xafb":                 "ab", // overlong '/'
		"a\xf4\x90\x80\x80b":         "ab", // above U+10FFFF
		"a\xe2\x82b":                 "ab", // truncated sequence
		"\xff":                       "",
	} {
		got := cleanText(in)
		if got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("cleanText(%q) = %q is not valid UTF-8", in, got)
		}
	}
	// The text the filter lets through is what encoding/xml accepts.
	for r := rune(0); r <= 0x10FFFF; r += 0x101 {
		s := cleanText(string(r))
		if s != "" && !xmlCharOK(s) {
			t.Errorf("cleanText kept U+%04X, which XML forbids", r)
		}
	}
}

// xmlCharOK reports whether encoding/xml reads s as character data.
func xmlCharOK(s string) bool {
	var v struct {
		Body string `xml:"b"`
	}
	var b strings.Builder
	b.WriteString("<x><b>")
	_ = xml.EscapeText(&b, []byte(s))
	b.WriteString("</b></x>")
	return xml.Unmarshal([]byte(b.String()), &v) == nil && v.Body == s
}
