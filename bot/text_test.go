package bot

import (
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
