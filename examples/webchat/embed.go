// Package webchat is crier's browser chat page: a small XMPP client built on
// Strophe.js that logs in over BOSH, joins a multi-user chat room, talks to
// the bot one-to-one, shows headline messages, and reconnects with backoff.
//
// The files live in static/ (index.html, app.js, style.css and the vendored
// Strophe.js bundle in static/vendor) and are compiled into the binary, so
// the demo needs neither npm nor a CDN at run time. The embedded server of
// demo mode serves them at / beside its BOSH endpoint /http-bind:
//
//	srv, err := miniserver.Start(ctx, miniserver.Config{
//		HTTPAddr: "127.0.0.1:5280",
//		Web:      webchat.FS,
//		// ...
//	})
//
// Any other web server can serve FS too; the page then needs the BOSH URL
// of an XMPP server that allows cross-origin requests (see README.md).
package webchat

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// FS holds the web chat's files with index.html at its root.
var FS fs.FS = mustSub(files, "static")

// mustSub returns the subtree dir of fsys. It panics only if dir is not a
// valid path, which the constant argument rules out.
func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic("webchat: " + err.Error())
	}
	return sub
}
