package rules

import "crier/internal/diag"

// Spec is one [[rules]] table of the config file, as decoded. The config
// loader fills Pos; Compile validates the rest and names lines from Pos.
//
// (The rules owner extends this struct with the full rule language.)
type Spec struct {
	Name  string   `toml:"name"`
	Match string   `toml:"match"`
	In    []string `toml:"in"`
	Reply string   `toml:"reply"`

	Pos diag.Pos `toml:"-"`
}

// CronSpec is one [[cron]] table of the config file.
type CronSpec struct {
	Name     string `toml:"name"`
	Schedule string `toml:"schedule"`
	Timezone string `toml:"timezone"`
	To       string `toml:"to"`
	Body     string `toml:"body"`

	Pos diag.Pos `toml:"-"`
}
