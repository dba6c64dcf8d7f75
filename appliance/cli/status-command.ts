import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';

import type { Command } from 'commander';

import type { HealthReport } from '../http/health';
import { loadConfig } from '../platform/config';
import { CliError, exitCodes } from './exit-codes';

const requestTimeoutMs = 5000;

export function registerStatusCommand(program: Command): Command {
  return program
    .command('status')
    .description(
      'Ask the running appliance for its health: HSM, database, search engine. Exit 0 when all are up.',
    )
    .option('--json', 'print the health document as JSON')
    .action(async (options: { json?: boolean }) => {
      const report = await fetchHealth();

      if (options.json) console.log(JSON.stringify(report, null, 2));
      else printReport(report);

      if (report.status !== 'ok') process.exitCode = exitCodes.checkFailed;
    });
}

function printReport(report: HealthReport): void {
  console.log(`appliance: ${report.status}`);
  for (const [name, check] of Object.entries(report.checks)) {
    console.log(`  ${name.padEnd(10)} ${check.status}${check.detail ? `  (${check.detail})` : ''}`);
  }
}

/** Calls GET /api/v1/health over HTTPS, trusting only the appliance's own certificate. */
function fetchHealth(): Promise<HealthReport> {
  const config = loadConfig();
  const certFile = path.join(config.tlsDir, 'appliance.crt');
  if (!fs.existsSync(certFile)) {
    throw new CliError(
      `the appliance has never started with data directory ${config.dataDir} (no ${certFile})`,
      exitCodes.unavailable,
    );
  }
  const url = `https://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}/api/v1/health`;

  return new Promise((resolve, reject) => {
    const request = https.get(
      url,
      { ca: fs.readFileSync(certFile), timeout: requestTimeoutMs },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => {
          try {
            resolve(JSON.parse(body) as HealthReport);
          } catch {
            reject(
              new CliError(
                `${url} returned HTTP ${response.statusCode} without a health document`,
                exitCodes.unavailable,
              ),
            );
          }
        });
      },
    );
    request.on('timeout', () =>
      request.destroy(new Error(`no response within ${requestTimeoutMs} ms`)),
    );
    request.on('error', (error) =>
      reject(
        new CliError(
          `the appliance does not respond at ${url}: ${error.message}`,
          exitCodes.unavailable,
        ),
      ),
    );
  });
}
