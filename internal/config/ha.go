package config

import (
	"time"

	"crier/plugins"
)

// Defaults and limits of the [ha] table.
const (
	// DefaultLease is ha.lease: a standby takes over within about one
	// lease after the leader died, and then joins its rooms, which must
	// fit in the 10 s a failover is allowed; the leader renews every
	// third of it, so that one lost renewal does not cost the lease.
	DefaultLease = 5 * time.Second
	// MinLease and MaxLease bound ha.lease. NATS counts key TTLs in
	// whole seconds, and a renewal every lease/3 with a margin of
	// lease/5 needs some room.
	MinLease = 2 * time.Second
	MaxLease = 5 * time.Minute
	// MaxReplicas bounds ha.replicas: JetStream keeps at most five copies
	// of a stream.
	MaxReplicas = 5
)

// natsPlugin and natsTable are the NATS relay's registered name and its
// table: [ha] uses the relay's connection settings.
const (
	natsPlugin = "natsrelay"
	natsTable  = "nats"
)

// HA is the [ha] table: instances sharing Bucket elect one leader.
type HA struct {
	// Bucket is the JetStream KV bucket holding the leader lease (and the
	// cron claims) on the NATS servers of [nats] url; empty: no election,
	// this instance always leads.
	Bucket string `toml:"bucket"`
	// Lease is how long a leader holds the lease without renewing it:
	// whole seconds, MinLease to MaxLease; DefaultLease when not written.
	Lease Duration `toml:"lease"`
	// Replicas is how many copies the NATS cluster keeps of each bucket
	// and stream crier creates for [ha] (the lease, the shared state, the
	// shared seen-window): 1 to MaxReplicas, 1 when not written; 3 on a
	// 3-node cluster, so that the loss of one node loses nothing.
	// Buckets that exist already keep their own.
	Replicas int `toml:"replicas"`
}

// Enabled reports whether instances elect a leader.
func (h HA) Enabled() bool { return h.Bucket != "" }

// ha checks the [ha] table. It runs after the plugins' tables were checked.
//
// The lease lives on the NATS servers of the relay's [nats] table, whose
// config the natsrelay plugin owns (it imports this package, so this one
// cannot read its type). What it needs of it is that a URL is there: the
// relay takes nats.url as written, or its default when [embedded] nats is
// on, so the check is on those keys of the file; the bot reaches the
// resolved URL and credentials through natsrelay.ConfigOf(cfg.Plugins).
func (v *validator) ha() {
	h := &v.c.HA
	if !v.written("ha.lease") {
		h.Lease = Duration(DefaultLease)
	}
	if !h.Enabled() {
		if v.written("ha.bucket") {
			v.errorf("ha.bucket", "must not be empty (leave [ha] out to run one instance)")
		} else if v.written("ha.lease") {
			v.errorf("ha.lease", "needs ha.bucket: the lease lives in that JetStream KV bucket")
		} else if v.written("ha.replicas") {
			v.errorf("ha.replicas", "needs ha.bucket: it is the replication of the [ha] buckets")
		}
		return
	}
	switch {
	case !v.written("ha.replicas"):
		h.Replicas = 1
	case h.Replicas < 1 || h.Replicas > MaxReplicas:
		v.errorf("ha.replicas", "%d is out of range: 1 to %d (copies kept by the NATS cluster; at most its number of JetStream servers)", h.Replicas, MaxReplicas)
	}
	if !validBucket(h.Bucket) {
		v.errorf("ha.bucket", "%q is not a KV bucket name: letters, digits, '-' and '_'", h.Bucket)
	}
	switch d := h.Lease.Std(); {
	case d < MinLease || d > MaxLease:
		v.errorf("ha.lease", "%v is out of range: %v to %v", d, MinLease, MaxLease)
	case d%time.Second != 0:
		v.errorf("ha.lease", "%v must be whole seconds (NATS counts key TTLs in seconds)", d)
	}
	if spec, ok := plugins.Lookup(natsPlugin); !ok || spec.Table != natsTable {
		v.errorf("ha.bucket", "needs the NATS relay, which this build of crier does not have")
		return
	}
	if !v.written(natsTable+".url") && !v.c.Embedded.NATS {
		v.errorf("ha.bucket", "needs [nats] url: the lease lives in a JetStream KV bucket on those servers")
	}
}

// validBucket reports whether name is a JetStream KV bucket name.
func validBucket(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
