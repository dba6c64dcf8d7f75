import { execFile } from 'node:child_process';
import path from 'node:path';

import { repoRoot } from '../platform/config';

const bin = path.join(repoRoot, 'appliance', 'cli', 'appliancectl.mjs');

/** Exit code and output of one appliancectl run. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs appliancectl in a child process as an operator would, with `env` on
 * top of this process's environment and `input` on its standard input.
 */
export function runAppliancectl(
  args: string[],
  env: Record<string, string>,
  input?: string,
): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [bin, ...args],
      { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, timeout: 120_000 },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) code = typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}
