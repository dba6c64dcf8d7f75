import cron, { type ScheduledTask } from 'node-cron';

import type { AuditTrail } from '../audit/trail';
import { ProblemError } from '../http/problem';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import {
  rotationAuditEntry,
  type AuditedCommit,
  type KeyOperator,
  type KeyRotationService,
} from './rotation';

/** Environment variable with the cron expression of scheduled master key rotation. */
export const rotationCronVariable = 'KEY_ROTATION_CRON';

/** Default schedule: 03:00 on the first day of every month, in the appliance's local time. */
export const defaultRotationCron = '0 3 1 * *';

/** Operator of scheduled rotations, as the audit trail and the rotation records name it. */
const scheduler: KeyOperator = { trigger: 'scheduler', actor: 'scheduler' };

/** Value of KEY_ROTATION_CRON or TENANT_KEY_ROTATION_CRON that turns its scheduled rotation off. */
export const rotationCronOff = 'off';

/**
 * Environment variable with the cron expression of scheduled tenant key
 * rotation. It defaults to off because each tenant key belongs to its customer.
 */
export const tenantRotationCronVariable = 'TENANT_KEY_ROTATION_CRON';

/**
 * Returns the cron expression of scheduled master key rotation, or null for
 * `off`. Throws an Error naming the variable and the fix when it is invalid.
 * An empty value means the default.
 */
export function parseRotationCron(value: string | undefined): string | null {
  return parseCronVariable(rotationCronVariable, value, defaultRotationCron);
}

/**
 * Returns the cron expression of scheduled tenant key rotation, or null when
 * the value is empty or `off`. Throws an Error naming the variable and the
 * fix when it is invalid.
 */
export function parseTenantRotationCron(value: string | undefined): string | null {
  return parseCronVariable(tenantRotationCronVariable, value, null);
}

function parseCronVariable(
  variable: string,
  value: string | undefined,
  fallback: string | null,
): string | null {
  const trimmed = value?.trim() ?? '';
  if (trimmed.toLowerCase() === rotationCronOff) return null;

  const expression = trimmed || fallback;
  if (expression === null) return null;

  const validation = cron.validateDetailed(expression);
  if (!validation.valid) {
    const reasons = validation.errors?.map((error) => `${error.field}: ${error.message}`) ?? [];
    throw new Error(
      `${variable} "${expression}" is not a valid cron expression${reasons.length ? ` (${reasons.join('; ')})` : ''}. Use five or six fields such as "${defaultRotationCron}" (03:00 on the first day of each month), or "${rotationCronOff}" to turn scheduled rotation off.`,
    );
  }
  return expression;
}

/**
 * Builds an AuditedCommit that appends `action` for `operator` in the same
 * transaction, naming a resource of `resourceType` with the id of the result.
 */
export function auditedCommit(
  database: Database,
  audit: Pick<AuditTrail, 'append'>,
  operator: KeyOperator,
  action: string,
  resourceType = 'master-key',
): AuditedCommit {
  return (work) =>
    database.write(async (transaction) => {
      const result = await work(transaction);
      const id = (result as { id?: unknown } | undefined)?.id;
      await audit.append(
        rotationAuditEntry(operator, action, typeof id === 'string' ? id : undefined, resourceType),
        transaction,
      );
      return result;
    });
}

/**
 * Schedules master key rotation with node-cron. A run that finds a rotation
 * still running logs a warning and skips; any other failure is logged, and
 * the next run tries again.
 */
export function scheduleRotation(
  expression: string,
  rotation: KeyRotationService,
  database: Database,
  audit: Pick<AuditTrail, 'append'>,
): ScheduledTask {
  return cron.schedule(
    expression,
    async () => {
      try {
        const record = await rotation.rotate(
          scheduler,
          auditedCommit(database, audit, scheduler, 'keys.master.rotate'),
        );
        logger.info(
          { rotationId: record.id, fromVersion: record.fromVersion, toVersion: record.toVersion },
          'scheduled master key rotation started',
        );
        rotation.startRewrap(record.id);
      } catch (error) {
        if (error instanceof ProblemError && error.status === 409) {
          logger.warn({ detail: error.detail }, 'scheduled master key rotation skipped');
          return;
        }
        logger.error({ err: error }, 'scheduled master key rotation failed');
      }
    },
    { name: 'master-key-rotation', noOverlap: true },
  );
}

/**
 * Schedules tenant key rotation with node-cron. `run` rotates every eligible
 * project and handles each project's failure itself, so an error reaching
 * this function is logged and the next run tries again.
 */
export function scheduleTenantRotation(
  expression: string,
  run: () => Promise<unknown>,
): ScheduledTask {
  return cron.schedule(
    expression,
    async () => {
      try {
        await run();
      } catch (error) {
        logger.error({ err: error }, 'scheduled tenant key rotation failed');
      }
    },
    { name: 'tenant-key-rotation', noOverlap: true },
  );
}
