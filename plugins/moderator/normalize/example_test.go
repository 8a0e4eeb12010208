package normalize_test

import (
	"fmt"
	"strings"

	"crier/plugins/moderator/normalize"
)

func Example() {
	n := normalize.New(normalize.All)
	t := n.Normalize("oh ѕһ\u200bіt, ＦＲＥＥ c o i n s")
	fmt.Println(t.String())
	i := strings.Index(t.String(), "shit")
	sp := t.ByteSpan(i, i+len("shit"))
	fmt.Printf("%q → %q (%s)\n", sp.Raw, sp.Norm, sp.Steps)
	// Output:
	// oh shit, fre coins
	// "ѕһ\u200bіt" → "shit" (invisible+confusables)
}
