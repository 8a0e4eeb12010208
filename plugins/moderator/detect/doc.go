// Package detect holds the moderator's detectors: word and phrase lists,
// RE2 patterns, capitals, symbols, zalgo, links and invites, mass mentions,
// flood per sender and per room (raid), repeated and near-duplicate
// messages, copypasta from many senders, and join waves. It knows nothing
// of XMPP: the moderator plugin feeds it messages and joins and turns the
// verdicts into actions.
//
// A Set normalises each message once (package normalize) and runs every
// detector on the result. Each Verdict names the detector and rule, carries
// the configured points, the raw and normalised excerpt that matched and the
// normalisation steps that made the difference: enough for an explain
// command to print. Word lists compile into one Aho-Corasick automaton, so
// ten thousand entries cost one table look-up per byte; whole words by
// default, "*" for infixes, allow entries checked after normalisation (the
// Scunthorpe problem). Detectors with per-sender state take a Clock and keep
// a bounded number of senders, dropping idle ones first. A detector's
// settings are read when it first runs; to change them, build a new one
// (a reload builds a new Set). Validate reports settings out of range.
//
// Usage:
//
//	n := normalize.New(normalize.All)
//	words, err := detect.NewWords(n, detect.WordList{
//		Name: "spam", Points: 3,
//		Words: []string{"free coins", "*cunt*"}, Allow: []string{"scunthorpe"},
//	})
//	if err != nil { ... } // every bad entry, at once
//	set := detect.NewSet(n, words,
//		&detect.Links{Allow: []string{"example.org"}, Loose: true, Points: 2},
//		&detect.Caps{Points: 1}, &detect.Flood{Points: 2},
//	)
//	for _, v := range set.Check(&detect.Message{Room: room, Sender: occupantID,
//		Nick: nick, Body: body, Occupants: occupants}, nil) {
//		fmt.Println(v) // words/spam +3 "ｆｒｅｅ c o i n s" as "fre coins" (nfkc+loose+runs): entry "free coins"
//	}
//	set.Join(room, occupantID, nil) // feeds JoinWave detectors
package detect
