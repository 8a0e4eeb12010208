package all

// natsrelay relays NATS messages to XMPP and XMPP messages to NATS.
import _ "crier/plugins/natsrelay"
