package rules_test

import (
	"fmt"
	"os"

	"crier/rules"
)

func ExampleDryRun() {
	eng, errs := rules.Compile([]rules.Spec{
		{Name: "ping", Match: `^!ping$`, Reply: "pong {{.Nick}}"},
		{Name: "coffee", Keywords: []string{"café"}, Reply: "☕", Private: true},
	}, rules.Options{})
	if len(errs) > 0 {
		fmt.Println(errs)
		return
	}
	rules.DryRun(os.Stdout, eng, rules.Message{
		Type: "groupchat", From: "lobby@conference.example.org/alice", Room: "lobby@conference.example.org",
		Nick: "alice", Body: "!ping", BotNick: "crier",
	})
	rules.DryRun(os.Stdout, eng, rules.Message{Type: "chat", From: "bob@example.org/phone", Body: "CAFE?"})
	rules.DryRun(os.Stdout, eng, rules.Message{Type: "chat", From: "bob@example.org/phone", Body: "hello"})
	// Output:
	// rule "ping"
	//   reply to lobby@conference.example.org (groupchat): pong alice
	// rule "coffee"
	//   reply to bob@example.org/phone (chat): ☕
	// no rule matched
}

func ExampleEngine_Evaluate() {
	eng, _ := rules.Compile([]rules.Spec{{
		Name:  "kick-spam",
		Match: `(?i)buy now`,
		Role:  []string{"participant"},
		Actions: []rules.ActionSpec{
			{Do: "kick", Text: "spam"},
			{Do: "log", Text: "kicked {{.Nick}}"},
		},
	}}, rules.Options{})
	for _, a := range eng.Evaluate(rules.Message{
		Type: "groupchat", From: "lobby@conference.example.org/spammer", Room: "lobby@conference.example.org",
		Role: "participant", Body: "BUY NOW!!!", BotNick: "crier",
	}) {
		fmt.Printf("%s %q %q %q permitted as moderator: %v\n", a.Kind, a.Nick, a.Room, a.Text, a.Permitted("moderator", "member"))
	}
	// Output:
	// kick "spammer" "lobby@conference.example.org" "spam" permitted as moderator: true
	// log "" "" "kicked spammer" permitted as moderator: true
}
