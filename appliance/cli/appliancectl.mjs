#!/usr/bin/env node
// Entry point of the `appliancectl` npm bin. The commands are TypeScript, so
// the tsx loader is registered before they are imported.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
