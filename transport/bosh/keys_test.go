package bosh

import (
	"crypto/sha1"
	"encoding/hex"
	"regexp"
	"testing"
)

// TestKeySequence checks the keys of XEP-0124 §15 as a connection manager
// verifies them: each key hashes to the previous key (or newkey), and a
// used-up sequence is replaced by a new one in the same request.
func TestKeySequence(t *testing.T) {
	c := &Conn{keys: keySequence(3)}
	re := regexp.MustCompile(`(new)?key='([0-9a-f]{40})'`)
	var expect string // what the next key must hash to
	switches := 0
	for i := range 8 {
		attrs := c.keyAttrs(i == 0)
		var key, newkey string
		for _, m := range re.FindAllStringSubmatch(attrs, -1) {
			if m[1] == "new" {
				newkey = m[2]
			} else {
				key = m[2]
			}
		}
		if i == 0 {
			if key != "" || newkey == "" {
				t.Fatalf("creation: %q, want newkey alone", attrs)
			}
			expect = newkey
			continue
		}
		sum := sha1.Sum([]byte(key))
		if hex.EncodeToString(sum[:]) != expect {
			t.Fatalf("request %d: key %s does not hash to %s", i, key, expect)
		}
		expect = key
		if newkey != "" {
			switches++
			expect = newkey
		}
	}
	if switches == 0 {
		t.Error("the key sequence was never renewed")
	}
}
