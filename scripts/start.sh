#!/usr/bin/env bash
# README command 1: installs what is missing, prepares the HSM token, builds the console and
# starts the appliance in the foreground with its embedded defaults (SQLite file, SoftHSM
# token and a bundled OpenSearch node, all under ./var unless APPLIANCE_DATA_DIR says
# otherwise). Set SEARCH_URL to use an existing Elasticsearch or OpenSearch instead.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_dir"

bash scripts/install-deps.sh
npm run --silent build:console -- --logLevel warn
node --import tsx scripts/init-token.ts

exec node appliance/cli/appliancectl.mjs start
