// Package webhooks is the crier plugin that receives webhooks (Prometheus
// Alertmanager, Grafana, CI systems, scripts) and posts them to users and
// rooms.
//
// Each [[webhooks]] table serves one path, on the bot's [http] listener or
// on a listener of its own, in one of three formats: "alertmanager"
// (Alertmanager's webhook payload version 4, which Grafana's webhook
// contact point sends too), "json" (the NATS relay's payload shape) and
// "text". A request is answered 200 only once the XMPP server has
// acknowledged every message made from it (Host.Send's done callback), and
// 503 with Retry-After when that cannot happen now, so that the sender
// retries; a retried notification that was already delivered is not posted
// again (its key is kept in the plugin's state until dedupe expires).
//
// Alerts are routed by label ([[webhooks.route]]), one message per
// recipient per notification, through a per-recipient token bucket: what
// waits for a token goes out together in one message, so that a storm
// stays readable and leaves the bot's outbox room for its replies.
//
// The plugin adds the commands alerts, and silence and silences when an
// alertmanager_url is set (Alertmanager's API v2).
//
//	[[webhooks]]
//	path   = "/hooks/alertmanager"
//	format = "alertmanager"
//	to     = ["ops@example.org", "ops@conference.example.org"]
//	token_file = "webhook-token.txt"
//
// and in Alertmanager's configuration:
//
//	receivers:
//	  - name: crier
//	    webhook_configs:
//	      - url: http://127.0.0.1:9090/hooks/alertmanager
//	        http_config:
//	          authorization: {credentials_file: webhook-token.txt}
package webhooks
