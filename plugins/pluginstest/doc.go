// Package pluginstest is a fake plugins.Host for plugin tests: no network,
// no bot. It records what a plugin sends and does, holds rooms and
// occupants set by the test, keeps an in-memory state namespace with the
// internal/state interface, and lets the test call the iq handlers and
// disco nodes the plugin registered.
//
//	h := pluginstest.New()
//	h.AddRoom(plugins.RoomInfo{JID: "lobby@conference.example.org", Nick: "crier", State: "joined"})
//	h.AddOccupant(plugins.Occupant{Room: "lobby@conference.example.org", Nick: "alice", Role: "moderator"})
//	err := p.Start(ctx, plugins.Env{Logger: log, Registerer: prometheus.NewRegistry(), Host: h})
//	...
//	msgs := h.WaitSent(t, 1, 5*time.Second) // the plugin's reply
//	out, err := h.IQ(ctx, "set", "alice@example.org/phone", payload)
//
// Send and Do succeed (done is called later with nil) unless the test sets
// SendErr or DoErr; every other Host method has a field or setter that
// decides its answer.
package pluginstest
