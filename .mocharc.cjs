// Tests are TypeScript run through tsx; integration tests start real SoftHSM,
// OpenSearch and Chromium, so their timeouts are generous.
module.exports = {
  'node-option': ['import=tsx'],
  extension: ['ts'],
  spec: ['scripts/**/*.test.ts', 'hsm/**/*.test.ts', 'collectors/**/*.test.ts', 'appliance/**/*.test.ts', 'console/**/*.test.ts'],
  timeout: 60000,
  exit: true,
};
