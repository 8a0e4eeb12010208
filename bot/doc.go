// Package bot is crier's daemon core: it keeps one XMPP session up through
// the transport package, reconnecting with backoff, keeps the configured
// rooms joined with its own MUC manager, answers iq requests, runs incoming
// messages through the rule chain and sends everything it says through one
// outbox.
//
//	cfg, err := config.Load("config.toml")
//	b, err := bot.New(cfg, bot.Options{Logger: logger})
//	go bot.ServeOps(ctx, cfg.HTTP.Listen, b.OpsHandler(reload))
//	err = b.Run(ctx) // until ctx ends; then a graceful shutdown
package bot
