// Package config loads and validates crier's TOML config file.
//
// Load decodes strictly: an unknown key, a value of the wrong type and every
// failed check is reported, all at once, as a diag.List of FILE:LINE:
// message. Secrets (passwords, tokens) are Secret values that print as
// "[redacted]", so a Config can be logged.
//
//	cfg, err := config.Load("config.toml")
//	if err != nil {
//		fmt.Fprintln(os.Stderr, err) // one "config.toml:12: ..." a line
//		os.Exit(2)
//	}
//	pass := cfg.XMPP.Password.Reveal()
//
// On reload, Diff tells whether the new file can be applied without a
// restart:
//
//	next, err := config.Load(cfg.Path)
//	if err == nil {
//		err = config.Diff(cfg, next) // wraps config.ErrRestart
//	}
//
// Each [[rules]] and [[cron]] table is decoded into rules.Spec and
// rules.CronSpec without checking its content; its Pos field says where the
// table and each of its keys stand, for the rules compiler to name lines.
package config
