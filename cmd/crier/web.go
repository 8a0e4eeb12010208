package main

import (
	"io/fs"

	"crier/examples/webchat"
)

// webFS returns the web chat that the embedded server serves at / on its
// HTTP listener in demo mode, beside the BOSH endpoint /http-bind.
func webFS() fs.FS { return webchat.FS }
