package detect_test

import (
	"fmt"

	"crier/plugins/moderator/detect"
	"crier/plugins/moderator/normalize"
)

func Example() {
	n := normalize.New(normalize.All)
	words, err := detect.NewWords(n, detect.WordList{
		Name: "spam", Points: 3,
		Words: []string{"free coins", "*cunt*"}, Allow: []string{"scunthorpe"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	set := detect.NewSet(n, words, &detect.Links{Allow: []string{"example.org"}, Loose: true, Points: 2})
	for _, body := range []string{
		"ｆｒｅｅ c o i n s at discord[.]gg/abc",
		"greetings from Scunthorpe, see wiki.example.org/town",
	} {
		vs := set.Check(&detect.Message{Room: "game@rooms.example", Sender: "id-1", Nick: "x", Body: body}, nil)
		fmt.Println(len(vs), "verdicts")
		for _, v := range vs {
			fmt.Println(v)
		}
	}
	// Output:
	// 2 verdicts
	// words/spam +3 "ｆｒｅｅ c o i n s" as "fre coins" (nfkc+loose+runs): entry "free coins"
	// links/invite +2 "discord[.]gg/abc" (loose): discord invite, domain discord.gg
	// 0 verdicts
}
