package config

import (
	"testing"
	"time"
)

func TestHA(t *testing.T) {
	const head = `
[xmpp]
jid = "bot@example.org"
password = "pw"
`
	tests := []struct {
		name string
		src  string
	}{
		{"off", ``},
		{"on", `
[nats]
url = "nats://127.0.0.1:4222"
[ha]
bucket = "crier-ha"
lease = "3s"
`},
		{"embedded nats gives the url", `
[embedded]
nats = true
[ha]
bucket = "crier_ha"
`},
		{"no nats url", `
[ha]
bucket = "crier-ha" # ERR: needs [nats] url
`},
		{"lease without bucket", `
[ha]
lease = "5s" # ERR: needs ha.bucket
`},
		{"empty bucket", `
[ha]
bucket = "" # ERR: must not be empty
`},
		{"bad bucket and lease", `
[nats]
url = "nats://127.0.0.1:4222"
[ha]
bucket = "crier.ha" # ERR: is not a KV bucket name
lease = "2500ms" # ERR: must be whole seconds
`},
		{"lease too short", `
[nats]
url = "nats://127.0.0.1:4222"
[ha]
bucket = "b"
lease = "1s" # ERR: out of range
`},
		{"lease too long", `
[nats]
url = "nats://127.0.0.1:4222"
[ha]
bucket = "b"
lease = "1h" # ERR: out of range
`},
		{"replicas out of range", `
[nats]
url = "nats://127.0.0.1:4222"
[ha]
bucket = "b"
replicas = 7 # ERR: out of range
`},
		{"replicas zero", `
[nats]
url = "nats://127.0.0.1:4222"
[ha]
bucket = "b"
replicas = 0 # ERR: out of range
`},
		{"replicas without bucket", `
[ha]
replicas = 3 # ERR: needs ha.bucket
`},
		{"unknown key", `
[nats]
url = "nats://127.0.0.1:4222"
[ha]
bucket = "b"
leader = "me" # ERR: unknown
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := head + tc.src
			got := loadErrs(t, t.TempDir(), src, noEnv)
			checkMarked(t, got, src)
		})
	}
	c := mustLoad(t, t.TempDir(), head+"[embedded]\nnats = true\n[ha]\nbucket = \"b\"\n")
	if !c.HA.Enabled() || c.HA.Lease.Std() != DefaultLease {
		t.Errorf("HA = %+v, want enabled with the default lease", c.HA)
	}
	if c.HA.Replicas != 1 {
		t.Errorf("default replicas %d, want 1", c.HA.Replicas)
	}
	c = mustLoad(t, t.TempDir(), head+"[embedded]\nnats = true\n[ha]\nbucket = \"b\"\nreplicas = 3\n")
	if c.HA.Replicas != 3 {
		t.Errorf("replicas %d, want 3", c.HA.Replicas)
	}
	if c.HA.Lease.Std() != 5*time.Second {
		t.Errorf("default lease %v, want 5s", c.HA.Lease)
	}
	if c := mustLoad(t, t.TempDir(), head); c.HA.Enabled() {
		t.Errorf("HA enabled without [ha]: %+v", c.HA)
	}
}
