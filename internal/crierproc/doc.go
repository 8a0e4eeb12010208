// Package crierproc runs the crier binary for acceptance tests and
// benchmarks, through its outside contract only: a config file, `crier run`
// as a subprocess, GET /-/ready and GET /metrics, and signals.
//
// Binary builds crier/cmd/crier once per test binary. WriteConfig writes a
// config file made of an [xmpp] table, an [http] table on a free loopback
// port and whatever further tables a test needs. Start runs `crier run` on
// such a file with its output captured, and stops it with SIGTERM when the
// test ends, failing the test unless it exits with status 0 in time or when
// it ended on its own. A Daemon waits for readiness, reads metrics, is
// killed with SIGKILL as a crash would end it, and reports whether it still
// runs.
//
// Buffer, the writer that keeps a process's output, also serves tests that
// collect the logs of an in-process bot or server.
package crierproc
