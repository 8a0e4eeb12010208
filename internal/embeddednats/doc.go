// Package embeddednats runs a NATS server with JetStream inside the crier
// process, for demo mode ([embedded] nats = true) and for tests. It listens
// on a loopback address only and keeps its JetStream store in a directory
// of its own.
//
//	srv, err := embeddednats.Start(ctx, "nats://127.0.0.1:0", "")
//	if err != nil {
//		return err
//	}
//	defer srv.Close()
//	nc, err := nats.Connect(srv.ClientURL())
package embeddednats
