// Package lease elects one leader among crier instances that share a NATS
// JetStream KV bucket, and claims cron ticks for one instance. It imports
// nats.go and the standard library only; the consensus is JetStream's
// (the bucket's stream, replicated by the NATS cluster's Raft groups).
//
//	kv, err := lease.Bucket(ctx, js, "crier-ha", 3, 5*time.Second)
//	l, err := lease.New(ctx, js, kv, lease.Options{TTL: 5 * time.Second,
//		OnChange: func(c lease.Change) { /* join rooms, or stop speaking */ }})
//	go l.Run(ctx) // campaigns until ctx ends, then gives the lease up
//	if token, ok := l.Leading(); ok { /* act, stamped with token */ }
//
// # The lease
//
// The lease is one key (DefaultKey) holding the leader's name. A standby
// takes it with a KV Create, which succeeds only when the key is missing or
// deleted; the leader renews it every Options.Renew (TTL/3) with a write on
// the revision it last wrote, so a renewal fails once anyone else wrote the
// key. Each write carries the lease as the key's own TTL (nats-server 2.11
// and later, the bucket's LimitMarkerTTL): the server deletes the key TTL
// after the last renewal and leaves a marker, which the standbys' watch of
// the key delivers at once, so that one of them takes over without polling.
//
// Per-key TTLs rather than a bucket TTL (MaxAge): a bucket TTL would give
// every key of the bucket the lease's lifetime (the cron claims need
// minutes), and its expiry leaves no marker for a watch to see. nats.go
// 1.55's KeyValue.Update takes no TTL, so a renewal is a JetStream publish
// on the key's subject with the expected last subject sequence and
// Nats-TTL headers, which is what Update sends plus the TTL. NATS counts
// message TTLs in whole seconds, so the lease is whole seconds.
//
// # Fencing and self-fencing
//
// The token of a term is the revision of the Create that began it (a
// stream sequence): every later term's token is greater. Renewals change
// the key's revision, not the token. A leader leads, by its own monotonic
// clock, until the start of its last successful renewal + TTL - Margin:
// the server can expire the key no sooner than TTL after it stored the
// renewal, which is after the renewal started, so a leader cut off from
// NATS has stopped (Leading is false, OnChange told) Margin before any
// standby can win. Only the leader's clock rate and the server's matter,
// not the offset between machines; a server clock that jumps forward by
// more than Margin can end a lease early.
//
// Fence records the highest token that acted on a resource and refuses an
// older one, for side effects outside the bucket.
//
// A store that fences its writes with the token on the server (the state
// store's KV backend) tells the leader when a newer term has fenced it off;
// StepDown then ends the term at once, whatever the clock says.
//
// # Cron ticks
//
// ClaimOnce creates a key per job and tick with ClaimTTL: the instance
// whose Create wins fires the tick, the others skip it.
package lease
