#!/usr/bin/env bash
# Shared helpers for the peer scripts (prosody.sh, ejabberd.sh). Sourced, not
# run: the caller sets `set -euo pipefail`.

# The accounts every instance has, as user:password pairs on the domain
# localhost.
PEER_ACCOUNTS=(crier:crierpw alice:alicepw bob:bobpw user1:user1pw user2:user2pw
	user3:user3pw user4:user4pw user5:user5pw)
# The external component (XEP-0114) each instance accepts on its component
# port, and its shared secret.
PEER_COMPONENT=alerts.localhost
PEER_COMPONENT_SECRET=alertssecret

# die prints its arguments to stderr and exits non-zero.
die() {
	echo "$PEER_NAME: $*" >&2
	exit 1
}

# port_busy succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# port_listed succeeds when the kernel lists a socket listening on port $1 on
# any address (ss is optional; without it only port_busy is used).
port_listed() {
	if command -v ss >/dev/null 2>&1; then
		[[ -n $(ss -Htln "sport = :$1" 2>/dev/null) ]]
	else
		return 1
	fi
}

# pick_ports prints $2 distinct free loopback ports. The search starts at a
# base derived from the instance directory $1 and the peer name, so the same
# directory gets the same ports whenever they are free, and two directories
# rarely compete. At most 400 candidates are probed.
pick_ports() {
	local dir=$1 count=$2 sum base p tried=0
	local -a got=()
	sum=$(printf '%s/%s' "$dir" "$PEER_NAME" | cksum | cut -d' ' -f1)
	# Below the kernel's ephemeral range (32768+) so that outgoing
	# connections never hold one of these ports.
	base=$((10000 + (sum % 220) * 100))
	p=$base
	while ((${#got[@]} < count)); do
		((tried < 400)) || die "no $count free ports near $base"
		tried=$((tried + 1))
		if ! port_busy "$p" && ! port_listed "$p"; then
			got+=("$p")
		fi
		p=$((p + 1))
	done
	echo "${got[@]}"
}

# env_get prints the value of key $2 in the env file $1 (empty if absent).
env_get() {
	local file=$1 key=$2 line
	[[ -f $file ]] || return 0
	line=$(grep -E "^$key=" "$file" | tail -n 1 || true)
	line=${line#*=}
	line=${line#\"}
	line=${line%\"}
	printf '%s' "$line"
}

# port_of prints the port of a host:port or URL value.
port_of() {
	local v=$1
	v=${v#*://}
	v=${v%%/*}
	printf '%s' "${v##*:}"
}

# make_cert writes a self-signed certificate for localhost (SAN localhost,
# conference.localhost, 127.0.0.1) to $1/cert.pem and its key to $1/key.pem,
# unless they exist.
make_cert() {
	local dir=$1
	if [[ -s $dir/cert.pem && -s $dir/key.pem ]]; then
		return 0
	fi
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
		-subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,DNS:conference.localhost,IP:127.0.0.1" \
		-keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 ||
		die "openssl could not make a certificate in $dir"
	chmod 0644 "$dir/cert.pem" "$dir/key.pem"
}

# wait_port waits until 127.0.0.1:$1 accepts connections, at most $2 seconds,
# while the process with pid file $3 (if given and once it exists) is alive.
wait_port() {
	local port=$1 limit=$2 pidfile=${3:-} i
	for ((i = 0; i < limit * 5; i++)); do
		if port_busy "$port"; then
			return 0
		fi
		# Give up early when the server wrote its pid and then died.
		if [[ -n $pidfile && -s $pidfile ]] && ! pid_alive "$pidfile"; then
			return 1
		fi
		sleep 0.2
	done
	return 1
}

# pid_alive succeeds when the pid file $1 names a live process.
pid_alive() {
	local pid
	[[ -s $1 ]] || return 1
	pid=$(cat "$1")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null
}

# stop_pid sends SIGTERM to the process in pid file $1 and waits at most $2
# seconds for it to exit, then sends SIGKILL.
stop_pid() {
	local pidfile=$1 limit=$2 pid i
	pid_alive "$pidfile" || return 0
	pid=$(cat "$pidfile")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < limit * 5; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	echo "$PEER_NAME: pid $pid did not stop in ${limit}s, killing it" >&2
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 25; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	die "pid $pid survived SIGKILL"
}

# write_env writes the instance description $dir/env that the Go side
# (internal/peers) parses. Arguments: dir c2s tls http script log shaper.
write_env() {
	local dir=$1 c2s=$2 tls=$3 http=$4 script=$5 log=$6 shaper=$7 comp=${8:-} a list=""
	for a in "${PEER_ACCOUNTS[@]}"; do
		list+="${a%%:*}@localhost:${a#*:} "
	done
	cat >"$dir/env.tmp" <<EOT
# Written by scripts/peers/$PEER_NAME.sh; read by internal/peers.
PEER=$PEER_NAME
DOMAIN=localhost
MUC=conference.localhost
MUC_LIMITED=limited.localhost
C2S=127.0.0.1:$c2s
TLS_DIRECT=127.0.0.1:$tls
HTTP=127.0.0.1:$http
BOSH_URL=http://127.0.0.1:$http/http-bind
WS_URL=ws://127.0.0.1:$http/xmpp-websocket
CA_FILE=$dir/cert.pem
LOG_FILE=$log
SCRIPT=$script
DIR=$dir
SHAPER=$shaper
ACCOUNTS="${list% }"
EOT
	if [[ -n $comp ]]; then
		cat >>"$dir/env.tmp" <<EOT
COMPONENT=127.0.0.1:$comp
COMPONENT_DOMAIN=$PEER_COMPONENT
COMPONENT_SECRET=$PEER_COMPONENT_SECRET
EOT
	fi
	mv "$dir/env.tmp" "$dir/env"
}

# write_env_https adds the TLS HTTP listener (port $2) to $1/env: its
# address and the BOSH and WebSocket URLs on it, named as the certificate
# names the host (localhost).
write_env_https() {
	local dir=$1 https=$2
	cat >>"$dir/env" <<EOT
HTTPS=127.0.0.1:$https
BOSH_TLS_URL=https://localhost:$https/http-bind
WSS_URL=wss://localhost:$https/xmpp-websocket
EOT
}

# usage_exit prints the usage line and exits 2.
usage_exit() {
	echo "usage: $0 start|stop|restart|status DIR   (env SHAPER=1 turns the 3000 B/s c2s shaper on)" >&2
	exit 2
}

# peer_status NAME: says whether the instance in $dir runs (its pid in
# $pidfile alive and its c2s port listening); returns 1 when it does not.
peer_status() {
	local name=$1 c2s
	c2s=$(port_of "$(env_get "$dir/env" C2S)")
	if pid_alive "$pidfile" && [[ -n $c2s ]] && port_busy "$c2s"; then
		echo "$name: running in $dir (c2s 127.0.0.1:$c2s)"
	else
		echo "$name: not running in $dir"
		return 1
	fi
}

# peer_main NAME CMD: runs start, stop, restart or status, with the start
# and stop functions the calling script defines.
peer_main() {
	case $2 in
	start) start ;;
	stop) stop ;;
	restart)
		stop
		start
		;;
	status) peer_status "$1" ;;
	*) usage_exit ;;
	esac
}
