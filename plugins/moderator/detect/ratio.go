package detect

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Caps flags messages that are mostly capitals.
type Caps struct {
	// MinLetters is the fewest cased letters a message needs before the
	// ratio counts (default 12), so "GG WP" and "LOL" pass.
	MinLetters int
	// Ratio is the share of capitals, 0..1, at or above which a message is
	// flagged (default 0.7).
	Ratio float64
	// Points is the weight of a finding.
	Points int
}

// Name implements Detector.
func (c *Caps) Name() string { return "caps" }

// Check implements Detector. Only letters of cased scripts count; nick
// mentions of current occupants, :shortcodes:, links and emoji are left out.
func (c *Caps) Check(in *Input, out []Verdict) []Verdict {
	minLetters := c.MinLetters
	if minLetters <= 0 {
		minLetters = 12
	}
	ratio := c.Ratio
	if ratio <= 0 {
		ratio = 0.7
	}
	body := in.Msg.Body
	if len(body) < minLetters {
		return out
	}
	upper, lower := 0, 0
	forWords(body, func(w string) {
		u, l := 0, 0
		for _, r := range w {
			switch {
			case r < 0x80:
				if 'A' <= r && r <= 'Z' {
					u++
				} else if 'a' <= r && r <= 'z' {
					l++
				}
			case unicode.IsUpper(r) || unicode.IsTitle(r):
				u++
			case unicode.IsLower(r):
				l++
			}
		}
		// Only a word with capitals can change the verdict, so only such
		// a word is looked up among the nicks.
		if u > 0 && skipWord(w, in.Msg.Occupants) {
			return
		}
		upper += u
		lower += l
	})
	total := upper + lower
	if total < minLetters || float64(upper) < ratio*float64(total) {
		return out
	}
	return append(out, Verdict{Detector: "caps", Rule: "caps", Points: c.Points,
		Detail: fmt.Sprintf("capitals %d%% of %d letters", upper*100/total, total)})
}

// forWords calls f for each space-separated word of s.
func forWords(s string, f func(string)) {
	for i := 0; i < len(s); {
		for i < len(s) && isSpaceByte(s[i]) {
			i++
		}
		j := i
		for j < len(s) && !isSpaceByte(s[j]) {
			j++
		}
		if j > i {
			f(s[i:j])
		}
		i = j
	}
}

func isSpaceByte(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// skipWord reports words that do not count for the capitals ratio: nick
// mentions, :shortcodes: and links.
func skipWord(w string, occ Occupants) bool {
	if len(w) > 2 && w[0] == ':' && w[len(w)-1] == ':' {
		return true
	}
	if strings.Contains(w, "://") {
		return true
	}
	if occ != nil {
		if nick := mentionNick(w); nick != "" && occ.IsOccupant(nick) {
			return true
		}
	}
	return false
}

// mentionNick strips a word of a leading "@" and trailing punctuation, as a
// mention is written ("@Bob", "Bob:", "bob,").
func mentionNick(w string) string {
	if len(w) > 0 && w[0] == '@' {
		w = w[1:]
	}
	for len(w) > 0 {
		switch w[len(w)-1] {
		case ',', ':', ';', '.', '!', '?', ')':
			w = w[:len(w)-1]
			continue
		}
		break
	}
	return w
}

// Symbols flags messages made mostly of symbols and punctuation (ASCII art,
// box drawing, "▓▓▓░░░").
type Symbols struct {
	// MinChars is the fewest non-space characters a message needs before
	// the ratio counts (default 12). Emoji do not count.
	MinChars int
	// Ratio is the share of symbols, 0..1, at or above which a message is
	// flagged (default 0.6).
	Ratio float64
	// Points is the weight of a finding.
	Points int
}

// Name implements Detector.
func (s *Symbols) Name() string { return "symbols" }

// Check implements Detector.
func (s *Symbols) Check(in *Input, out []Verdict) []Verdict {
	minChars := s.MinChars
	if minChars <= 0 {
		minChars = 12
	}
	ratio := s.Ratio
	if ratio <= 0 {
		ratio = 0.6
	}
	body := in.Msg.Body
	if len(body) < minChars {
		return out
	}
	symbols, total := 0, 0
	for i := 0; i < len(body); {
		r, size := rune(body[i]), 1
		if r >= 0x80 {
			r, size = utf8.DecodeRuneInString(body[i:])
		}
		i += size
		switch {
		case r < 0x80:
			if isSpaceByte(byte(r)) {
				continue
			}
			total++
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') && r > ' ' {
				symbols++
			}
		case emoji(r) || unicode.IsSpace(r) || unicode.IsMark(r) || unicode.Is(unicode.Cf, r):
		default:
			total++
			if unicode.IsSymbol(r) || unicode.IsPunct(r) || r == 0x2800 {
				symbols++
			}
		}
	}
	if total < minChars || float64(symbols) < ratio*float64(total) {
		return out
	}
	return append(out, Verdict{Detector: "symbols", Rule: "symbols", Points: s.Points,
		Detail: fmt.Sprintf("symbols %d%% of %d characters", symbols*100/total, total)})
}

// emoji reports characters in the blocks emoji come from; a rough cut of
// Extended_Pictographic that is enough to keep emoji out of the ratios.
func emoji(r rune) bool {
	return r >= 0x1F000 && r <= 0x1FAFF || r >= 0x2600 && r <= 0x27BF ||
		r >= 0x2B00 && r <= 0x2BFF || r >= 0x2300 && r <= 0x23FF ||
		r >= 0xFE00 && r <= 0xFE0F || r == 0x200D || r >= 0xE0020 && r <= 0xE007F
}

// Zalgo flags combining-mark floods.
type Zalgo struct {
	// MaxPerBase is the most combining marks one character may carry
	// (default 3: Vietnamese, vocalised Arabic and Indic scripts stay
	// below it).
	MaxPerBase int
	// Points is the weight of a finding.
	Points int
}

// Name implements Detector.
func (z *Zalgo) Name() string { return "zalgo" }

// Check implements Detector.
func (z *Zalgo) Check(in *Input, out []Verdict) []Verdict {
	limit := z.MaxPerBase
	if limit <= 0 {
		limit = 3
	}
	t := in.Text
	if t.MaxMarks <= limit {
		return out
	}
	return append(out, Verdict{Detector: "zalgo", Rule: "zalgo", Points: z.Points,
		Detail: fmt.Sprintf("%d combining marks on one character (limit %d), %d in all",
			t.MaxMarks, limit, t.Marks)})
}
