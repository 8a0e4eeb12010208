// Package boshcm is the mini server's BOSH connection manager
// (XEP-0124/XEP-0206): it turns HTTP requests to /http-bind into an XMPP
// stream handed to the server as a net.Conn.
//
//	h := boshcm.New(boshcm.Config{Domain: "example.test", Serve: srv.ServeSecure})
//	mux.Handle("/http-bind", h)
//	...
//	h.Close() // ends every session with system-shutdown, waits for Serve
//
// Each session runs Config.Serve once on an in-memory net.Conn: the server
// reads a synthetic stream header (again after each restart) followed by the
// client's elements, and its output is cut into elements (internal/boshwire)
// that answer the held requests.
//
// Protocol: requests='2', hold='1' (or 0 if asked), 'wait' up to MaxWait.
// Requests are processed in rid order (early ones wait for the missing
// rid); a repeated rid is answered with the same response again while it is
// buffered, or takes the place of the still-held original. Terminal binding
// conditions: bad-request (malformed body, HTTP 400), item-not-found (unknown
// sid or rid outside the window, HTTP 404), policy-violation (too many
// simultaneous requests or empty requests faster than 'polling', HTTP 403;
// body over MaxBody, HTTP 413), host-unknown, system-shutdown (Close),
// remote-stream-error (the server sent a stream error, included in the
// body). A session without requests for 'inactivity' seconds (or its
// pause) ends. Terminate(sid, cond) ends a live session from outside (a
// test's fault injection) exactly like a fatal error would: the held
// requests get the terminate with cond, later requests learn cond too.
// Close answers every held request with system-shutdown and waits until the
// answers are written, so that a server closing its listener right after
// still delivers them. Every response carries CORS headers for browser
// clients; OPTIONS is a preflight and GET a short text page.
package boshcm
