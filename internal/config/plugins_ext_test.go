package config_test

// The plugins' tables ([nats], [commands]...) are decoded and checked by
// the config loader; linking every plugin into this test binary lets the
// package's own tests load files that use them.
import _ "crier/plugins/all"
