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
// Protocol (XEP-0124 with XEP-0206; internal/boshwire/conform checks it):
// 'wait' and 'hold' are the client's values clamped to MaxWait and MaxHold
// (never more than asked; hold='0' or wait='0' is a polling session), a value
// that is not a non-negative integer is a bad-request; requests is hold+1
// (at least 2). Requests are processed and answered in rid order: one that
// arrives early waits for the missing rid (§14.2); a repeated rid is
// answered with the same response again while it is buffered (§14.3), or
// takes the place of the still-held original. At most 'hold' requests are
// kept waiting: a new one makes the oldest answered, once the server has
// handled the new request's payload (at most 10 ms later), so that the
// server's immediate answer (an iq result, a room's echo) travels on the
// old request and the new one stays held for what follows, as Prosody's
// synchronous processing does. A client asking for acks (ack='1') gets
// 'ack' on the creation response and on answers to older requests (§9.1);
// answers it acknowledges leave the repeat buffer (§9.2). A key sequence
// (§15) is verified when the client uses one. A pause (§10) answers every
// held request at once, the pause request without payloads, and stretches
// the inactivity period until the next request.
//
// Errors are terminal binding conditions in a type='terminate' body with
// HTTP 200 (§17.2); the deprecated HTTP codes of §17.1 (400, 403, 404) go
// only to legacy clients, those whose creation request had no 'ver'.
// Conditions: bad-request (malformed body, bad wait or hold),
// improper-addressing (no 'to'), host-unknown, item-not-found (unknown or
// ended sid, rid outside the window or no longer buffered, wrong key),
// policy-violation (too many simultaneous requests, empty requests faster
// than 'polling', a body over MaxBody), remote-connection-failed (session
// cap, the server went away), system-shutdown (Close), remote-stream-error
// (the server sent a stream error, included in the body). A client's
// terminate (§13) is answered type='terminate'; the requests open with it
// learn condition='other-request'; later requests are answered as for a
// session that does not exist. A session without requests for 'inactivity'
// seconds (or its pause) ends. Terminate(sid, cond) ends a live session
// from outside (a test's fault injection) exactly like a fatal error would:
// the held requests get the terminate with cond, later requests learn cond
// too. Close answers every held request with system-shutdown and waits
// until the answers are written, so that a server closing its listener
// right after still delivers them. Every response carries CORS headers for
// browser clients and the Content-Type the creation request's 'content'
// asked for; OPTIONS is a preflight and GET a short text page.
package boshcm
