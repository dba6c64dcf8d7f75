// Tests are TypeScript run through tsx; integration tests start real SoftHSM,
// OpenSearch and Chromium, so their timeouts are generous. The suites to run
// are named on the command line (scripts/test.sh names all of them), because
// mocha adds a `spec` set here to any file named on the command line.
module.exports = {
  'node-option': ['import=tsx'],
  extension: ['ts'],
  timeout: 60000,
  exit: true,
};
