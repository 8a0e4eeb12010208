// Package plugins is the small interface between crier's core and its
// plugins. A plugin is a folder under plugins/ that registers a Spec in its
// init function (plugins/all imports every plugin with one blank import
// each). The Spec names the TOML table the plugin owns and returns its
// config struct; the config loader decodes that table with the same strict,
// line-numbered decoder as the core keys, so a typo is FILE:LINE in
// `crier check`.
//
// Optional behaviour is found by type assertion (Starter, Stopper, Readier,
// Publisher, StatusReporter, Link, Fallback, Commander), as the compile-time
// guards at the bottom of each plugin show. A running plugin reaches the
// bot only through the Host in its Env: send, act in rooms, look up
// occupants, answer iq requests, keep state.
//
//	func init() {
//		plugins.Register(plugins.Spec{
//			Name: "hello", Table: "hello",
//			Config: func() any { return &Config{Greeting: "hi"} },
//			New: func(cfg any, core plugins.Core) (plugins.Plugin, bool, error) {
//				return &Plugin{cfg: *cfg.(*Config)}, true, nil
//			},
//		})
//	}
//
// See docs/PLUGINS.md for a whole plugin.
package plugins
