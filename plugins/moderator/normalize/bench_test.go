package normalize

import "testing"

var benchTexts = map[string][]string{
	"ascii": {"anyone up for a raid tonight?", "gg wp", "the wiki has a full guide: https://wiki.example.org/jungle",
		"I have 20, 15 gold each", "does anyone want to trade a sword for my shield"},
	"scripts": {"Привет всем, как дела?", "みんな、がんばって", "سلام دوستان، می\u200cخواهم بازی کنم",
		"नमस्ते दोस्तों", "Tiếng Việt có dấu"},
	"evasions": {"ѕһіt happens", "ＦＲＥＥ ＣＯＩＮＳ", "f r e e c o i n s", "sh\u200bit\U000E0041", "f̸̢̛u̶c̷k̴ $h1t"},
}

// BenchmarkNormalize is the matching copy with every step, per text.
func BenchmarkNormalize(b *testing.B) {
	for _, kind := range []string{"ascii", "scripts", "evasions"} {
		texts := benchTexts[kind]
		b.Run(kind, func(b *testing.B) {
			n := New(All)
			var t Text
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n.NormalizeInto(&t, texts[i%len(texts)])
				i++
			}
		})
	}
}
