// Package normalize makes the matching copy of a chat message: the text a
// moderator compares with its word lists, with the disguises people use to
// get past them taken off. The copy is for matching only; what is shown or
// logged stays the original, and every character of the copy knows the
// stretch of the original it came from, so a match is reported as the
// sender wrote it.
//
// Each step is switchable and named (Step), in this order: NFKC
// (fullwidth, mathematical and circled letters), Invisible (zero-width and
// format characters, tag characters, blank look-alikes; ZWNJ and ZWJ are
// kept between letters of Arabic, Persian, Indic and other scripts that need
// them), Loose (spaced-out letters "f r e e" joined), Leet ("sh1t", "a$$"),
// Marks (accents and zalgo stripped), Confusables (the UTS #39 skeleton from
// Unicode's confusables.txt, with case folding in between and "i"/"l" made
// one letter), Fold (full case folding) and Runs ("fooooo" → "fo", the run
// length kept so "good" and "god" stay apart). Homoglyphs is a lighter
// Confusables for texts that regular expressions read.
//
// The skeleton table is generated from data/confusables.txt (version
// ConfusablesVersion) by gen_confusables.go; see generate.go.
//
// Usage:
//
//	n := normalize.New(normalize.All) // once; safe for concurrent use
//	t := n.Normalize("oh ѕһ\u200bіt")
//	t.String()               // "oh shit"
//	sp := t.Span(3, t.Len()) // characters 3.. of the copy: the last word
//	sp.Raw, sp.Norm          // "ѕһ\u200bіt", "shit"
//	sp.Steps                 // invisible+confusables
//
// Hot paths reuse a Text with NormalizeInto, which allocates nothing once
// the Text's buffers have grown.
package normalize
