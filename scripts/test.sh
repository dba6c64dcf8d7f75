#!/usr/bin/env bash
# README command 2: installs what is missing, then runs every check and test: type check, lint,
# and the mocha suites, whose integration tests use a real SoftHSM token, a real OpenSearch
# node started here on 127.0.0.1, real SQLite files and headless Chromium. The last line is
# "N passed, N failed".
set -uo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_dir"

passed=0
failed=0
summary() {
  echo "$passed passed, $failed failed"
}
check() {
  local name="$1"
  shift
  echo "== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "== $name FAILED" >&2
    failed=$((failed + 1))
  fi
}

if ! bash scripts/install-deps.sh; then
  echo "test: installing dependencies failed" >&2
  failed=1
  summary
  exit 1
fi

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/appliance-test-run.XXXXXX")"
search_env=(SEARCH_NODE_PORT="${TEST_SEARCH_PORT:-9250}" SEARCH_NODE_DATA_DIR="$work_dir/search-node"
  SEARCH_NODE_HEAP="${TEST_SEARCH_HEAP:-1g}")
cleanup() {
  if [[ -z "${TEST_SEARCH_URL_GIVEN:-}" ]]; then
    env "${search_env[@]}" bash scripts/search-node.sh stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work_dir"
}
trap cleanup EXIT

# A caller may point the tests at a node of their own with TEST_SEARCH_URL.
if [[ -n "${TEST_SEARCH_URL:-}" ]]; then
  TEST_SEARCH_URL_GIVEN=1
else
  if ! env "${search_env[@]}" bash scripts/search-node.sh start; then
    echo "test: the OpenSearch test node did not start" >&2
    failed=1
    summary
    exit 1
  fi
  export TEST_SEARCH_URL="http://127.0.0.1:${TEST_SEARCH_PORT:-9250}"
fi

check "build console" npm run --silent build:console -- --logLevel warn
check "type check" npx tsc --noEmit -p tsconfig.json
check "console type check" npx svelte-check --tsconfig console/tsconfig.json --fail-on-warnings --output machine
check "lint" npx eslint --max-warnings 0 .
check "format" npx prettier --check --log-level warn .

# Info logs of the many appliances the tests start would bury the test output.
export LOG_LEVEL="${LOG_LEVEL:-warn}"
export TEST_SUMMARY_FILE="$work_dir/mocha-summary.json"
# Arguments name test files or mocha options; with none, every suite runs.
specs=("$@")
if ((${#specs[@]} == 0)); then
  specs=('scripts/**/*.test.ts' 'hsm/**/*.test.ts' 'collectors/**/*.test.ts' 'appliance/**/*.test.ts' 'console/**/*.test.ts')
fi
npx mocha --reporter scripts/test/summary-reporter.cjs "${specs[@]}"
mocha_status=$?
if [[ -f "$TEST_SUMMARY_FILE" ]]; then
  passed=$((passed + $(jq .passes "$TEST_SUMMARY_FILE")))
  failed=$((failed + $(jq .failures "$TEST_SUMMARY_FILE")))
elif ((mocha_status != 0)); then
  echo "test: mocha ended before its summary (exit $mocha_status)" >&2
  failed=$((failed + 1))
fi

summary
((failed == 0))
