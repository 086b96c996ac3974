#!/usr/bin/env bash
# hrm-fhir local FHIR R4 sandbox (HAPI FHIR JPA on in-memory H2). See docs/sandbox.md.
#
#   run.sh build           build target/hrm-hapi-sandbox.jar if missing or older than pom.xml/src
#   run.sh start [PORT]    build if needed, start in the background, wait for /fhir/metadata,
#                          print the base URL (http://127.0.0.1:PORT/fhir) as the last line
#   run.sh stop            stop it
#   run.sh status          "running ..." (exit 0) or "stopped" (exit 3)
#   run.sh url             print the base URL of the running sandbox (exit 3 when stopped)
#
# PORT: argument, else $HRM_SANDBOX_PORT, else 8080. The server binds 127.0.0.1 only.
# Environment: HRM_SANDBOX_JAVA_OPTS (JVM options; default
#                "-Xms256m -Xmx1536m -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError"),
#              HRM_SANDBOX_START_TIMEOUT (seconds to wait for metadata, default 300),
#              HRM_SANDBOX_MVN_OPTS (extra Maven arguments for the build, e.g. -o).
# Pid and log files live in sandbox/hapi/.run/ (git-ignored): hapi.pid, hapi.port, hapi.log;
# bulk export files (Binary content) in .run/binary/, emptied at each start and when it stops.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JAR="$HERE/target/hrm-hapi-sandbox.jar"
APP_DIR="$HERE/target/app"
APP_JAR="$APP_DIR/hrm-hapi-sandbox.jar"
RUN_DIR="$HERE/.run"
PID_FILE="$RUN_DIR/hapi.pid"
PORT_FILE="$RUN_DIR/hapi.port"
LOG_FILE="$RUN_DIR/hapi.log"
BUILD_LOG="$RUN_DIR/build.log"
BINARY_DIR="$RUN_DIR/binary" # the server makes its own folder in here and deletes it when it stops
HEARTBEAT=15 # seconds between "still ..." lines while building or starting
JAVA_OPTS_DEFAULT="-Xms256m -Xmx1536m -XX:TieredStopAtLevel=1 -XX:+ExitOnOutOfMemoryError"
JAVA_OPTS="${HRM_SANDBOX_JAVA_OPTS:-$JAVA_OPTS_DEFAULT}"
START_TIMEOUT="${HRM_SANDBOX_START_TIMEOUT:-300}"

say() { echo "hapi-sandbox: $*" >&2; }
die() { say "$*"; exit 1; }

base_url() { echo "http://127.0.0.1:$1/fhir"; }

m2_size() { # ", <Maven repository> holds N MB" (how far the first build's downloads have got)
	local repo="$HOME/.m2/repository"
	if [[ "${HRM_SANDBOX_MVN_OPTS:-}" =~ -Dmaven\.repo\.local=([^[:space:]]+) ]]; then
		repo="${BASH_REMATCH[1]}"
	fi
	if [ -d "$repo" ]; then
		echo ", $repo holds $(du -sm "$repo" 2>/dev/null | cut -f1) MB"
	fi
}

needs_build() {
	[ -f "$JAR" ] || return 0
	[ -n "$(find "$HERE/pom.xml" "$HERE/src" -newer "$JAR" -print -quit)" ]
}

# Unpack the fat jar into target/app (app jar + lib/): the JVM starts a few seconds faster from
# plain jars than from Spring Boot's nested ones. Falls back to the fat jar if that fails.
extract() {
	if [ -f "$APP_JAR" ] && [ "$APP_JAR" -nt "$JAR" ]; then
		return 0
	fi
	rm -rf "$APP_DIR"
	if ! java -Djarmode=tools -jar "$JAR" extract --destination "$APP_DIR" >/dev/null 2>&1; then
		say "could not unpack $JAR; will run the fat jar"
		rm -rf "$APP_DIR"
	fi
}

cmd_build() {
	command -v mvn >/dev/null || die "mvn not found (Maven 3.8+ and Java 17 are needed)"
	command -v java >/dev/null || die "java not found (Java 17 is needed)"
	if needs_build; then
		say "building $JAR with Maven (the first build downloads about 230 MB into ~/.m2) ..."
		local t0=$SECONDS
		local rc=0
		mkdir -p "$RUN_DIR"
		# shellcheck disable=SC2086
		mvn -q -B ${HRM_SANDBOX_MVN_OPTS:-} -f "$HERE/pom.xml" package -DskipTests >"$BUILD_LOG" 2>&1 &
		local mvn_pid=$!
		local said=$SECONDS
		while kill -0 "$mvn_pid" 2>/dev/null; do
			sleep 1
			if [ $((SECONDS - said)) -ge "$HEARTBEAT" ]; then
				said=$SECONDS
				say "still building: $((SECONDS - t0)) s$(m2_size)"
			fi
		done
		wait "$mvn_pid" || rc=$?
		sed -e 's/\x1b\[[0-9;]*m//g' "$BUILD_LOG" | awk 'NF' >&2
		[ "$rc" -eq 0 ] || die "Maven build failed (exit $rc)"
		[ -f "$JAR" ] || die "build finished but $JAR is missing"
		touch "$JAR"
		say "built in $((SECONDS - t0)) s"
	fi
	extract
}

# Pid of our server if it is running, else nothing.
running_pid() {
	[ -f "$PID_FILE" ] || return 0
	local pid
	pid="$(cat "$PID_FILE" 2>/dev/null || true)"
	[ -n "$pid" ] || return 0
	if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'hrm-hapi-sandbox'; then
		echo "$pid"
	fi
}

running_port() { cat "$PORT_FILE" 2>/dev/null || true; }

metadata_status() { # port -> HTTP status of GET /fhir/metadata (000 if nothing answers)
	curl -s -o /dev/null --max-time 10 -w '%{http_code}' "$(base_url "$1")/metadata" 2>/dev/null || true
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

show_log_tail() {
	if [ -f "$LOG_FILE" ]; then
		say "last 40 lines of $LOG_FILE:"
		tail -n 40 "$LOG_FILE" >&2
	fi
}

cmd_start() {
	local port="${1:-${HRM_SANDBOX_PORT:-8080}}"
	[[ "$port" =~ ^[0-9]+$ ]] || die "invalid port: $port"
	command -v curl >/dev/null || die "curl not found"

	local pid
	pid="$(running_pid)"
	if [ -n "$pid" ]; then
		local rport
		rport="$(running_port)"
		if [ "$rport" = "$port" ] && [ "$(metadata_status "$port")" = 200 ]; then
			say "already running (pid $pid)"
			base_url "$port"
			return 0
		fi
		die "already running (pid $pid, port ${rport:-?}); run.sh stop first"
	fi
	rm -f "$PID_FILE" "$PORT_FILE"
	if port_in_use "$port"; then
		die "port $port on 127.0.0.1 is already in use by another process"
	fi

	cmd_build
	local jar="$JAR"
	[ -f "$APP_JAR" ] && jar="$APP_JAR"

	mkdir -p "$RUN_DIR"
	[ -f "$LOG_FILE" ] && mv -f "$LOG_FILE" "$LOG_FILE.1"
	rm -rf "$BINARY_DIR" # what a killed server left: its database is gone with it
	say "starting on port $port (log: $LOG_FILE)"
	local t0=$SECONDS
	# shellcheck disable=SC2086
	HRM_SANDBOX_PORT="$port" nohup java $JAVA_OPTS -jar "$jar" --server.port="$port" \
		--hrm.sandbox.binary-storage.parent="$BINARY_DIR" >"$LOG_FILE" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$PID_FILE"
	echo "$port" >"$PORT_FILE"

	local said=$SECONDS
	while true; do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$PID_FILE" "$PORT_FILE"
			say "FAILED: the server process exited during start-up"
			show_log_tail
			exit 1
		fi
		if [ "$(metadata_status "$port")" = 200 ]; then
			break
		fi
		if [ $((SECONDS - said)) -ge "$HEARTBEAT" ]; then
			said=$SECONDS
			say "still starting: $((SECONDS - t0)) s (HAPI takes 20-30 s on a quiet machine, more on a busy one)"
		fi
		if [ $((SECONDS - t0)) -ge "$START_TIMEOUT" ]; then
			say "FAILED: /fhir/metadata did not answer 200 within ${START_TIMEOUT} s; stopping pid $pid"
			show_log_tail
			stop_pid "$pid"
			rm -f "$PID_FILE" "$PORT_FILE"
			exit 1
		fi
		sleep 1
	done
	say "up in $((SECONDS - t0)) s (pid $pid)"
	base_url "$port"
}

stop_pid() {
	local pid="$1"
	kill -TERM "$pid" 2>/dev/null || return 0
	for _ in $(seq 1 60); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.5
	done
	say "pid $pid did not stop within 30 s; killing it"
	kill -KILL "$pid" 2>/dev/null || true
}

cmd_stop() {
	local pid
	pid="$(running_pid)"
	if [ -z "$pid" ]; then
		rm -f "$PID_FILE" "$PORT_FILE"
		say "stopped (was not running)"
		return 0
	fi
	stop_pid "$pid"
	rm -f "$PID_FILE" "$PORT_FILE"
	say "stopped (pid $pid)"
}

cmd_status() {
	local pid
	pid="$(running_pid)"
	if [ -n "$pid" ]; then
		local port
		port="$(running_port)"
		echo "running (pid $pid, $(base_url "$port"), metadata HTTP $(metadata_status "$port"))"
		return 0
	fi
	echo "stopped"
	return 3
}

cmd_url() {
	if [ -n "$(running_pid)" ]; then
		base_url "$(running_port)"
		return 0
	fi
	echo "stopped" >&2
	return 3
}

case "${1:-}" in
	build) cmd_build ;;
	start) cmd_start "${2:-}" ;;
	stop) cmd_stop ;;
	status) cmd_status ;;
	url) cmd_url ;;
	*)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 2
		;;
esac
