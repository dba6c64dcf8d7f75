#!/usr/bin/env node
// Entry point of the `appliancectl` npm bin. The commands are TypeScript, so
// the tsx loader is registered before they are imported.
import { register } from 'tsx/esm/api';

// Only the long-running `start` logs at info by default; the short commands
// print their results and would otherwise mix in routine log lines.
if (process.env.LOG_LEVEL === undefined && process.argv[2] !== 'start') {
  process.env.LOG_LEVEL = 'warn';
}

register();
await import('./main.ts');
