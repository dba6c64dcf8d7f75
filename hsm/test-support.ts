import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';

import { pino, type Logger } from 'pino';

import { redactedPaths } from '../appliance/platform/logger';
import type { HsmConfig } from './pkcs11-module';

/** The SoftHSM 2 module that the tests load (Debian package softhsm2). */
export const softHsmModule = '/usr/lib/softhsm/libsofthsm2.so';

/** A temporary directory with the HSM configuration of one test token; nothing exists in it yet. */
export interface TestTokenDir {
  dir: string;
  hsm: HsmConfig;
  remove(): void;
}

/** Creates an empty temporary directory and an HSM configuration that places everything inside it. */
export function createTestTokenDir(tokenLabel: string): TestTokenDir {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hsm-test-'));
  return {
    dir,
    hsm: {
      modulePath: softHsmModule,
      softhsmConf: path.join(dir, 'softhsm', 'softhsm2.conf'),
      tokenLabel,
      pinFile: path.join(dir, 'secrets', 'hsm-user-pin'),
      soPinFile: path.join(dir, 'secrets', 'hsm-so-pin'),
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** A pino logger with the appliance's redaction that keeps every line it writes. */
export function createCapturingLogger(): { logger: Logger; output: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(chunk.toString('utf8'));
      callback();
    },
  });
  const logger = pino(
    { level: 'trace', redact: { paths: redactedPaths, censor: '[redacted]' } },
    stream,
  );
  return { logger, output: () => lines.join('') };
}

/**
 * Runs OpenSC's pkcs11-tool against the test token and returns its
 * standard output. The PIN goes on the command line, which is acceptable
 * only for a throw-away test token.
 */
export function runPkcs11Tool(hsm: HsmConfig, args: string[]): string {
  return execFileSync(
    'pkcs11-tool',
    ['--module', hsm.modulePath, '--token-label', hsm.tokenLabel, ...args],
    {
      env: { ...process.env, SOFTHSM2_CONF: hsm.softhsmConf },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
}
