#!/usr/bin/env bash
# Starts, stops and checks one local OpenSearch 2.19 node built from the Maven project in
# scripts/search-node. The node binds 127.0.0.1 only.
#
# Usage: scripts/search-node.sh start|stop|status|classpath
#
# Environment:
#   SEARCH_NODE_PORT            HTTP port (default 9200)
#   SEARCH_NODE_TRANSPORT_PORT  transport port (default HTTP port + 100)
#   SEARCH_NODE_HEAP            JVM heap, passed as -Xms and -Xmx (default 1g)
#   SEARCH_NODE_DATA_DIR        node home, data and logs (default <repo>/var/search-node)
#   SEARCH_NODE_START_TIMEOUT   seconds to wait for yellow or green health (default 120)
#   SEARCH_NODE_STOP_TIMEOUT    seconds to wait after SIGTERM before SIGKILL (default 60)
#
# Exit status: 0 on success, 1 on failure, 2 on invalid usage, and 3 from `status` when no
# node of this data dir answers.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$script_dir/.." && pwd)"
project_dir="$script_dir/search-node"
target_dir="$project_dir/target"
classpath_file="$target_dir/classpath.txt"
build_stamp="$target_dir/.build-stamp"
main_class="appliance.search.SearchNodeMain"

http_port="${SEARCH_NODE_PORT:-9200}"
transport_port="${SEARCH_NODE_TRANSPORT_PORT:-}"
heap="${SEARCH_NODE_HEAP:-1g}"
data_dir="${SEARCH_NODE_DATA_DIR:-$repo_dir/var/search-node}"
start_timeout="${SEARCH_NODE_START_TIMEOUT:-120}"
stop_timeout="${SEARCH_NODE_STOP_TIMEOUT:-60}"

log() { echo "search-node: $*" >&2; }
fail() {
  log "$*"
  exit 1
}
usage() {
  echo "usage: $0 start|stop|status|classpath" >&2
  exit 2
}

is_port() { [[ "$1" =~ ^[0-9]+$ ]] && ((10#$1 >= 1 && 10#$1 <= 65535)); }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

validate_env() {
  is_port "$http_port" || fail "invalid SEARCH_NODE_PORT [$http_port]; expected a number from 1 to 65535"
  if [[ -z "$transport_port" ]]; then
    transport_port=$((10#$http_port + 100))
  fi
  is_port "$transport_port" ||
    fail "invalid SEARCH_NODE_TRANSPORT_PORT [$transport_port]; expected a number from 1 to 65535"
  ((10#$http_port != 10#$transport_port)) ||
    fail "SEARCH_NODE_PORT and SEARCH_NODE_TRANSPORT_PORT are both $http_port; set two different ports"
  [[ "$heap" =~ ^[0-9]+[kKmMgG]$ ]] || fail "invalid SEARCH_NODE_HEAP [$heap]; expected a JVM size such as 512m or 1g"
  is_uint "$start_timeout" || fail "invalid SEARCH_NODE_START_TIMEOUT [$start_timeout]; expected seconds"
  is_uint "$stop_timeout" || fail "invalid SEARCH_NODE_STOP_TIMEOUT [$stop_timeout]; expected seconds"

  mkdir -p "$data_dir"
  data_dir="$(cd "$data_dir" && pwd)"
  pid_file="$data_dir/search-node.pid"
  console_log="$data_dir/console.log"
  url="http://127.0.0.1:$http_port"
}

# Prints the newest modification time (epoch seconds) of the pom and the sources.
newest_source_mtime() {
  find "$project_dir/pom.xml" "$project_dir/src" -type f -printf '%T@\n' | sort -n | tail -1 | cut -d. -f1
}

# Compiles the launcher and writes the dependency classpath, unless an earlier build is newer
# than every source file. A lock keeps concurrent starts from building into target/ at once.
# Maven runs offline first, so a machine whose local repository already has the jars needs no
# network. Only when that fails does it go online.
build() {
  mkdir -p "$target_dir"
  exec 9>"$target_dir/.build.lock"
  flock 9

  if [[ -f "$build_stamp" && -f "$classpath_file" ]] &&
    (($(stat -c %Y "$build_stamp") >= $(newest_source_mtime))); then
    exec 9>&-
    return 0
  fi

  command -v mvn >/dev/null || fail "mvn not found; install Maven 3.8 or later"
  command -v java >/dev/null || fail "java not found; install a Java 17 JDK"

  local build_log="$target_dir/build.log"
  local goals=(-B -q -f "$project_dir/pom.xml" compile dependency:build-classpath "-Dmdep.outputFile=$classpath_file")
  log "building $project_dir (first run resolves OpenSearch jars from Maven Central)"
  if ! mvn -o "${goals[@]}" >"$build_log" 2>&1; then
    if ! mvn "${goals[@]}" >"$build_log" 2>&1; then
      tail -n 40 "$build_log" >&2
      fail "maven build failed; full output in $build_log"
    fi
  fi
  touch "$build_stamp"
  exec 9>&-
}

print_classpath() {
  printf '%s:%s\n' "$target_dir/classes" "$(cat "$classpath_file")"
}

# Prints the pid from the pid file if that process is still this data dir's node. A pid file
# left by a crashed node, or whose pid now belongs to another process, is removed.
running_pid() {
  [[ -f "$pid_file" ]] || return 1
  local pid
  pid="$(cat "$pid_file")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && [[ -r "/proc/$pid/cmdline" ]] &&
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$main_class --data-dir $data_dir "; then
    echo "$pid"
    return 0
  fi
  rm -f "$pid_file"
  return 1
}

# Prints the cluster health JSON and succeeds when the status is yellow or green.
health() {
  local body
  body="$(curl -sS --max-time 5 "$url/_cluster/health" 2>/dev/null)" || return 1
  [[ "$body" =~ \"status\":\"(green|yellow)\" ]] || return 1
  echo "$body"
}

wait_until_healthy() {
  local pid="$1"
  local deadline=$((SECONDS + start_timeout))
  while ((SECONDS < deadline)); do
    if health >/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$pid_file"
      tail -n 40 "$console_log" >&2 || true
      fail "node exited during start; console log $console_log, full log $data_dir/logs/search-node.log"
    fi
    sleep 1
  done
  tail -n 40 "$console_log" >&2 || true
  fail "node did not reach yellow or green health at $url within ${start_timeout}s (pid $pid, still running; stop it with: $0 stop)"
}

start() {
  local pid
  if pid="$(running_pid)"; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "--http-port $http_port " ||
      fail "node of $data_dir already runs with pid $pid on another HTTP port; stop it first or set SEARCH_NODE_PORT to its port"
    log "node already running with pid $pid; waiting for health"
    wait_until_healthy "$pid"
    echo "$url"
    return 0
  fi

  if curl -sS --max-time 2 -o /dev/null "$url/" 2>/dev/null; then
    fail "port $http_port already answers HTTP, but not from a node of $data_dir; stop that server or set SEARCH_NODE_PORT"
  fi

  build
  command -v java >/dev/null || fail "java not found; install a Java 17 JDK"
  mkdir -p "$data_dir/tmp"

  # Netty and log4j flags follow the jvm.options of the OpenSearch 2.19 distribution. The log4j
  # shutdown hook is off because the launcher's own hook still logs while the node closes.
  local jvm_args=(
    "-Xms$heap" "-Xmx$heap"
    -XX:+UseG1GC
    -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$data_dir/logs"
    -XX:-OmitStackTraceInFastThrow
    -Dfile.encoding=UTF-8
    -Djava.awt.headless=true
    "-Djava.io.tmpdir=$data_dir/tmp"
    -Dio.netty.noUnsafe=true
    -Dio.netty.noKeySetOptimization=true
    -Dio.netty.recycler.maxCapacityPerThread=0
    -Dlog4j.shutdownHookEnabled=false
    -Dlog4j2.disable.jmx=true
  )

  # setsid detaches the node from the caller's terminal and process group, so it outlives this
  # script and a Ctrl-C in the caller's terminal.
  setsid java "${jvm_args[@]}" -cp "$(print_classpath)" "$main_class" \
    --data-dir "$data_dir" --http-port "$http_port" --transport-port "$transport_port" \
    </dev/null >>"$console_log" 2>&1 &
  pid=$!
  echo "$pid" >"$pid_file"
  log "started pid $pid; waiting up to ${start_timeout}s for $url"

  wait_until_healthy "$pid"
  echo "$url"
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    log "no node running for $data_dir"
    return 0
  fi

  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + stop_timeout))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "node pid $pid still running ${stop_timeout}s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    local kill_deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < kill_deadline)); do
      sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && fail "node pid $pid survived SIGKILL for 10s; pid file kept at $pid_file"
  fi
  rm -f "$pid_file"
  log "stopped pid $pid"
}

status() {
  local pid body
  if ! pid="$(running_pid)"; then
    log "not running (no live pid in $pid_file)"
    exit 3
  fi
  if ! body="$(health)"; then
    log "pid $pid is running but $url/_cluster/health does not report yellow or green"
    exit 3
  fi
  echo "$body"
}

[[ $# -eq 1 ]] || usage
case "$1" in
  start)
    validate_env
    start
    ;;
  stop)
    validate_env
    stop
    ;;
  status)
    validate_env
    status
    ;;
  classpath)
    build
    print_classpath
    ;;
  *) usage ;;
esac
