import type { Request, Response } from 'express';

import { logger } from '../platform/logger';

/** State of one dependency: `up`, or `down` with an operator-facing reason. */
export interface HealthCheck {
  status: 'up' | 'down';
  detail?: string;
}

/** The health document: `ok` only when every check is up. */
export interface HealthReport {
  status: 'ok' | 'degraded';
  checks: Record<string, HealthCheck>;
}

/**
 * Runs named checks side by side. A check that throws counts as down with
 * its message, so one broken dependency never hides the state of the others.
 */
export async function runHealthChecks(
  checks: Record<string, () => Promise<HealthCheck> | HealthCheck>,
): Promise<HealthReport> {
  const names = Object.keys(checks);
  const results = await Promise.all(
    names.map(async (name): Promise<HealthCheck> => {
      try {
        return await checks[name]();
      } catch (error) {
        return { status: 'down', detail: error instanceof Error ? error.message : String(error) };
      }
    }),
  );

  const report: HealthReport = { status: 'ok', checks: {} };
  names.forEach((name, index) => {
    report.checks[name] = results[index];
    if (results[index].status === 'down') report.status = 'degraded';
  });
  return report;
}

/**
 * GET /api/v1/health: public and outside the audited routes, because it
 * reads no stored data and load balancers and `appliancectl status` call it
 * often. 200 when everything is up, 503 otherwise.
 */
export function healthHandler(health: () => Promise<HealthReport>) {
  return async (_request: Request, response: Response) => {
    const report = await health().catch((error: unknown): HealthReport => {
      logger.error({ err: error }, 'health check failed');
      return { status: 'degraded', checks: {} };
    });
    response
      .status(report.status === 'ok' ? 200 : 503)
      .set('cache-control', 'no-store')
      .json(report);
  };
}
