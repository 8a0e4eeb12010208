package all

// commands serves chat commands and XEP-0050 ad-hoc commands.
import _ "crier/plugins/commands"
