package all

// webhooks turns Alertmanager, Grafana and other webhooks into messages.
import _ "crier/plugins/webhooks"
