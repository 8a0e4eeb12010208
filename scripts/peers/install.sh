#!/usr/bin/env bash
# Installs the real XMPP servers (Prosody, ejabberd), Prometheus
# Alertmanager (the webhooks peer test) and the tools the peer scripts use, only when they are missing. Runs apt-get update at most once,
# and only when something has to be installed. Safe to run again.
#
# Usage: scripts/peers/install.sh [--with-chromium] [--without-peers]
#   --with-chromium   also install Debian's chromium (browser tests)
#   --without-peers   skip Prosody, ejabberd and Alertmanager
set -euo pipefail

with_chromium=0
with_peers=1
for arg in "$@"; do
	case "$arg" in
	--with-chromium) with_chromium=1 ;;
	--without-peers) with_peers=0 ;;
	*)
		echo "install.sh: unknown argument: $arg" >&2
		exit 2
		;;
	esac
done

# need maps a command to the Debian package that provides it.
declare -A need=(
	[curl]=curl
	[openssl]=openssl
	# A client nobody here wrote, for the interop tests (test/clients,
	# against the embedded server: no peer needed).
	[go-sendxmpp]=go-sendxmpp
)
if [[ $with_peers == 1 ]]; then
	need[prosody]=prosody
	need[prosodyctl]=prosody
	need[ejabberdctl]=ejabberd
	need[prometheus-alertmanager]=prometheus-alertmanager
	need[amtool]=prometheus-alertmanager
fi
if [[ $with_chromium == 1 ]]; then
	need[chromium]=chromium
fi

missing=()
for cmd in "${!need[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		missing+=("${need[$cmd]}")
	fi
done
# lua-event gives Prosody its libevent backend; it has no command to probe.
if [[ $with_peers == 1 ]] &&
	! dpkg-query -W -f='${Status}' lua-event 2>/dev/null | grep -q 'install ok installed'; then
	missing+=(lua-event)
fi
# prosody-modules gives Prosody mod_muc_moderation (XEP-0425 retraction).
if [[ $with_peers == 1 ]] &&
	! dpkg-query -W -f='${Status}' prosody-modules 2>/dev/null | grep -q 'install ok installed'; then
	missing+=(prosody-modules)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install.sh: everything present"
	exit 0
fi

# Deduplicate the package list.
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install.sh: installing ${pkgs[*]}"

if [[ $(id -u) -ne 0 ]]; then
	echo "install.sh: must run as root to install ${pkgs[*]}" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Debian's packages try to start their services; there is no init system to
# start them with here, and the scripts run private instances anyway.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e $policy ]]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	created_policy=1
fi
cleanup() {
	if [[ $created_policy == 1 ]]; then
		rm -f "$policy"
	fi
}
trap cleanup EXIT

apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"

# The packaged services may have started anyway (postinst without an init
# system); stop them so they do not hold the default ports.
if command -v ejabberdctl >/dev/null 2>&1; then
	ejabberdctl stop >/dev/null 2>&1 || true
fi
if [[ -f /run/prosody/prosody.pid ]]; then
	kill "$(cat /run/prosody/prosody.pid)" >/dev/null 2>&1 || true
fi
# The Alertmanager package's service would hold :9093 and :9094; the peer
# test runs a private instance on loopback ports of its own.
if [[ -f /run/prometheus/prometheus-alertmanager.pid ]]; then
	kill "$(cat /run/prometheus/prometheus-alertmanager.pid)" >/dev/null 2>&1 || true
fi
# The ejabberd package starts epmd, which listens on every address; the
# private instances do not use it (they set ERL_DIST_PORT).
if command -v epmd >/dev/null 2>&1; then
	epmd -kill >/dev/null 2>&1 || true
fi
echo "install.sh: done"
