package detect

import (
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"crier/plugins/moderator/normalize"
)

// Links flags links and invites whose domain is not on the allow-list. It
// sees links with a scheme ("https://…"), "www." names and bare domains
// with a known top-level domain ("discord.gg/x", "example.com"); with Loose
// it also sees obfuscated dots ("example[.]com", "example(dot)com",
// "example dot com", "example . com"). Fullwidth and other compatibility
// forms are read as plain letters, and invisible characters are skipped.
type Links struct {
	// Allow lists domains whose links are fine; subdomains are allowed too.
	Allow []string
	// Loose sees through obfuscated dots.
	Loose bool
	// Points is the weight of a link.
	Points int
	// InvitePoints is the weight of an invite to another chat (Discord,
	// Telegram, WhatsApp); 0 means Points.
	InvitePoints int

	once  sync.Once
	norm  *normalize.Normalizer
	allow []string
	pool  sync.Pool
}

// Name implements Detector.
func (l *Links) Name() string { return "links" }

func (l *Links) init() {
	l.norm = normalize.New(normalize.NFKC | normalize.Invisible | normalize.Fold)
	for _, d := range l.Allow {
		d = strings.Trim(l.norm.String(strings.TrimSpace(d)), ".")
		if d != "" {
			l.allow = append(l.allow, d)
		}
	}
	l.pool.New = func() any { return new(normalize.Text) }
}

// A Link is one link found in a text.
type Link struct {
	// Host is the domain, folded to lower case.
	Host string
	// Path is what follows the domain, if anything.
	Path string
	// Invite names the service when the link is an invite ("discord").
	Invite string
	// Obfuscated is set when the dots were written out or bracketed.
	Obfuscated bool
	// Start and End are the byte range of the link in the original text.
	Start, End int
}

// Check implements Detector: one verdict per message, for its first link
// that is not allowed.
func (l *Links) Check(in *Input, out []Verdict) []Verdict {
	l.once.Do(l.init)
	body := in.Msg.Body
	if !mayHoldLink(body, l.Loose) {
		return out
	}
	t := l.pool.Get().(*normalize.Text)
	defer l.pool.Put(t)
	l.norm.NormalizeInto(t, body)
	links := findLinks(t, l.Loose, nil)
	n := 0
	var first *Link
	for i := range links {
		if l.allowed(links[i].Host) {
			continue
		}
		if first == nil {
			first = &links[i]
		}
		n++
	}
	if first == nil {
		return out
	}
	rule, points := "link", l.Points
	if first.Invite != "" {
		rule = "invite"
		if l.InvitePoints != 0 {
			points = l.InvitePoints
		}
	}
	sp := t.Span(t.Char(first.Start), t.Char(first.End-1)+1)
	steps := sp.Steps
	if first.Obfuscated {
		steps |= normalize.Loose
	}
	detail := fmt.Sprintf("domain %s", first.Host)
	if first.Invite != "" {
		detail = fmt.Sprintf("%s invite, domain %s", first.Invite, first.Host)
	}
	if n > 1 {
		detail += fmt.Sprintf(" (%d links)", n)
	}
	return append(out, Verdict{Detector: "links", Rule: rule, Points: points,
		Raw: sp.Raw, Norm: sp.Norm, Steps: steps, Detail: detail})
}

func (l *Links) allowed(host string) bool {
	for _, d := range l.allow {
		if host == d || strings.HasSuffix(host, d) && host[len(host)-len(d)-1] == '.' {
			return true
		}
	}
	return false
}

// mayHoldLink is a cheap test that rules out most messages before any
// normalisation: a link needs a dot of some kind.
func mayHoldLink(s string, loose bool) bool {
	nonASCII := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			return true
		case c >= 0x80:
			nonASCII = true
		case loose && (c == 'd' || c == 'D') && i+2 < len(s) &&
			(s[i+1] == 'o' || s[i+1] == 'O') && (s[i+2] == 't' || s[i+2] == 'T'):
			return true
		}
	}
	return nonASCII && mayHoldLinkRunes(s)
}

// mayHoldLinkRunes looks at the non-ASCII characters of s for anything
// NFKC may turn into a dot or into the letters of a spelt-out "dot"
// (fullwidth forms, one-dot leaders, small full stops, enclosed "1." forms,
// mathematical and circled letters) and for invisible characters, which may
// split a "dot".
func mayHoldLinkRunes(s string) bool {
	for _, r := range s {
		switch {
		case r < 0x80:
		case r >= 0x2024 && r <= 0x2026, r == 0xFE52, r >= 0xFF00 && r <= 0xFFEF,
			r >= 0x2488 && r <= 0x249B, r >= 0x1F100 && r <= 0x1F10A,
			r >= 0x1D400 && r <= 0x1D7FF, r >= 0x24B6 && r <= 0x24E9,
			r == 0x3164, r == 0x115F, r == 0x1160, r == 0xFFA0, unicode.Is(unicode.Cf, r):
			return true
		}
	}
	return false
}

// FindLinks returns the links in s, read as the Links detector reads them.
func FindLinks(s string, loose bool) []Link {
	n := normalize.New(normalize.NFKC | normalize.Invisible | normalize.Fold)
	t := n.Normalize(s)
	links := findLinks(t, loose, nil)
	for i := range links {
		sp := t.Span(t.Char(links[i].Start), t.Char(links[i].End-1)+1)
		links[i].Start, links[i].End = sp.Start, sp.End
	}
	return links
}

// findLinks scans the normalised text; Start and End are byte offsets in it.
func findLinks(t *normalize.Text, loose bool, out []Link) []Link {
	s := t.Bytes()
	for i := 0; i < len(s); {
		if !labelStart(s, i) {
			_, size := utf8.DecodeRune(s[i:])
			i += size
			continue
		}
		link, end, ok := parseLink(s, i, loose)
		if ok {
			out = append(out, link)
			i = end
			continue
		}
		// Skip the rest of this word.
		for i < len(s) && labelByte(s, i) {
			_, size := utf8.DecodeRune(s[i:])
			i += size
		}
	}
	return out
}

// labelStart reports whether a domain label may start at i: a label
// character not preceded by one.
func labelStart(s []byte, i int) bool {
	if !labelByte(s, i) {
		return false
	}
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRune(s[:i])
	return !labelRune(r) && r != '@'
}

func labelByte(s []byte, i int) bool {
	r, _ := utf8.DecodeRune(s[i:])
	return labelRune(r)
}

func labelRune(r rune) bool {
	if r < 0x80 {
		return 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// parseLink tries to read a link starting at i.
func parseLink(s []byte, i int, loose bool) (Link, int, bool) {
	start := i
	scheme := false
	if j, ok := schemePrefix(s, i); ok {
		scheme, i = true, j
	}
	// Label boundaries, without allocating: most candidates are no links.
	var labels [16][2]int
	n := 0
	obf := false
	for {
		j := i
		for j < len(s) && labelByte(s, j) {
			_, size := utf8.DecodeRune(s[j:])
			j += size
		}
		if j == i {
			break
		}
		if n == len(labels) {
			return Link{}, 0, false
		}
		labels[n] = [2]int{i, j}
		n++
		i = j
		k, o, ok := dotAt(s, i, loose)
		if !ok || k >= len(s) || !labelByte(s, k) {
			break
		}
		obf = obf || o
		i = k
	}
	if n < 2 {
		return Link{}, 0, false
	}
	tld := s[labels[n-1][0]:labels[n-1][1]]
	pathStart, end := i, i
	if i < len(s) && s[i] == '/' || loose && i+1 < len(s) && s[i] == ' ' && s[i+1] == '/' {
		j := i
		for j < len(s) && s[j] == ' ' {
			j++
		}
		k := j
		for k < len(s) && !isSpaceByte(s[k]) {
			k++
		}
		pathStart, end = j, k
	}
	pathLen := end - pathStart
	known, ambiguous := tldKind(tld)
	first := s[labels[0][0]:labels[0][1]]
	switch {
	case scheme:
	case string(first) == "www":
	case !known:
		return Link{}, 0, false
	case ambiguous && pathLen < 2 && n < 3:
		// "ok.so", "it.is": a word, a dot and a word, not a link.
		return Link{}, 0, false
	}
	var host []byte
	for k := 0; k < n; k++ {
		if k > 0 {
			host = append(host, '.')
		}
		host = append(host, s[labels[k][0]:labels[k][1]]...)
	}
	h, path := string(host), string(s[pathStart:end])
	return Link{Host: h, Path: path, Invite: inviteOf(h, path), Obfuscated: obf, Start: start, End: end}, end, true
}

// schemePrefix recognises "http://", "https://" and a few others.
func schemePrefix(s []byte, i int) (int, bool) {
	for _, p := range [...]string{"https://", "http://", "ftp://", "xmpp:", "hxxps://", "hxxp://"} {
		if len(s)-i >= len(p) && string(s[i:i+len(p)]) == p {
			return i + len(p), true
		}
	}
	return i, false
}

// dotAt recognises a dot between labels at i, and in loose mode its
// disguises; it returns where the next label starts.
func dotAt(s []byte, i int, loose bool) (next int, obfuscated, ok bool) {
	if i < len(s) && s[i] == '.' {
		return i + 1, false, true
	}
	if !loose {
		return i, false, false
	}
	j := i
	for j < len(s) && s[j] == ' ' {
		j++
	}
	spaced := j > i
	if j < len(s) {
		switch s[j] {
		case '[', '(', '{', '<':
			k := j + 1
			for k < len(s) && s[k] == ' ' {
				k++
			}
			if m, ok := dotWord(s, k); ok {
				for m < len(s) && s[m] == ' ' {
					m++
				}
				if m < len(s) && (s[m] == ']' || s[m] == ')' || s[m] == '}' || s[m] == '>') {
					m++
					for m < len(s) && s[m] == ' ' {
						m++
					}
					return m, true, true
				}
			}
		case '.':
			if spaced && j+1 < len(s) && s[j+1] == ' ' {
				m := j + 1
				for m < len(s) && s[m] == ' ' {
					m++
				}
				return m, true, true
			}
		case 'd':
			if spaced {
				if m, ok := dotWord(s, j); ok && m < len(s) && s[m] == ' ' {
					for m < len(s) && s[m] == ' ' {
						m++
					}
					return m, true, true
				}
			}
		}
	}
	return i, false, false
}

// dotWord matches "." or "dot" at i.
func dotWord(s []byte, i int) (int, bool) {
	if i < len(s) && s[i] == '.' {
		return i + 1, true
	}
	if len(s)-i >= 3 && string(s[i:i+3]) == "dot" {
		return i + 3, true
	}
	return i, false
}

// inviteOf names the chat service an invite link leads to.
func inviteOf(host, path string) string {
	host = strings.TrimPrefix(host, "www.")
	switch {
	case host == "discord.gg" && len(path) > 1,
		(host == "discord.com" || host == "discordapp.com") && strings.HasPrefix(path, "/invite/"):
		return "discord"
	case (host == "t.me" || host == "telegram.me") && len(path) > 1:
		return "telegram"
	case host == "chat.whatsapp.com" && len(path) > 1:
		return "whatsapp"
	case host == "revolt.chat" || host == "rvlt.gg" && len(path) > 1:
		return "revolt"
	}
	return ""
}

// tldKind tells whether tld is a top-level domain this detector knows, and
// whether it is also a common short word, so a bare "x.tld" needs a path
// before it counts as a link.
func tldKind(tld []byte) (known, ambiguous bool) {
	if _, ok := ambiguousTLDs[string(tld)]; ok {
		return true, true
	}
	_, ok := knownTLDs[string(tld)]
	return ok, false
}

var knownTLDs = setOf("com", "net", "org", "info", "biz", "io", "gg", "co", "tv", "xyz",
	"ru", "de", "uk", "fr", "nl", "eu", "ca", "au", "jp", "cn", "br", "es", "pl", "se",
	"ch", "dk", "fi", "cz", "pt", "gr", "tr", "ua", "kr", "tk", "ml", "ga", "cf", "gq",
	"top", "site", "online", "club", "shop", "store", "app", "dev", "link", "live",
	"pro", "vip", "win", "bid", "stream", "cc", "ly", "sh", "ws", "su", "ir", "kz",
	"ro", "hu", "sk", "lt", "lv", "ee", "bg", "rs", "hr", "si", "ie", "nz", "za", "mx",
	"ar", "cl", "pe", "ve", "vn", "th", "id", "ph", "sg", "hk", "tw", "pk", "bd", "ng",
	"ke", "eg", "sa", "ae", "il", "gov", "edu", "mil", "int", "mobi", "name", "tech",
	"space", "website", "fun", "icu", "buzz", "monster", "rest", "bar", "cam", "cyou",
	"click", "gift", "gifts", "money", "cash", "game", "games", "gay", "sex", "porn",
	"xxx", "adult", "bet", "casino", "poker", "email", "chat", "social", "news", "blog",
	"page", "zip", "mov", "lol", "wtf", "fm", "gl", "ai", "ms", "nu", "lc", "pw", "cx",
	"la", "vc", "gd", "gs", "im", "ac", "tf", "yt", "re", "pm", "wf", "mn", "md", "st")

var ambiguousTLDs = setOf("at", "be", "by", "do", "in", "is", "it", "me", "my", "no",
	"so", "to", "us", "am", "an", "as", "ad", "al", "ax", "bo", "ci", "er", "ge", "lu",
	"ma", "mu", "na", "ne", "pa")

func setOf(words ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(words))
	for _, w := range words {
		m[w] = struct{}{}
	}
	return m
}
