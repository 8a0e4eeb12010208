package config_test

import (
	"fmt"

	"crier/internal/config"
)

func ExampleLoadBytes() {
	_, err := config.LoadBytes("crier.toml", []byte(`
[xmpp]
jid = "crier@example.org/home"
password = "secret"
tls = "plain"
keepalive = "often"

[[rooms]]
jid = "lobby@conference.example.org"
nickname = "crier"
`))
	fmt.Println(err)
	// Output:
	// crier.toml:3: xmpp.jid: "crier@example.org/home" must be a bare JID, without /home
	// crier.toml:5: xmpp.tls: must be "starttls", "direct" or "none", not "plain"
	// crier.toml:6: xmpp.keepalive: duration must look like "30s" or "1m30s", or be a number of seconds: "often"
	// crier.toml:10: unknown key rooms.nickname (did you mean "nick"?)
}

func ExampleSecret() {
	s := config.Secret("hunter2")
	fmt.Printf("%v %q %#v\n", s, s, s)
	fmt.Println(s.Reveal())
	// Output:
	// [redacted] [redacted] [redacted]
	// hunter2
}
