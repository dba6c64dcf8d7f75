import crypto from 'node:crypto';

import { TenantKeyUnavailableError } from '../../hsm/tenant-keys';
import type { AuditEntry, AuditTrail } from '../audit/trail';
import { ProblemError } from '../http/problem';
import type { AuditedCommit, KeyOperator } from '../keys/rotation';
import { listRotations, type RotationRecord } from '../keys/rotation-records';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import type { TenantKeyRotation } from './key-rotation';
import { listTenantKeyVersions } from './key-versions';
import type { KeyedProject, ProjectService } from './service';

/** Operator of scheduled rotations, as the audit trail and the rotation records name it. */
const scheduler: KeyOperator = { trigger: 'scheduler', actor: 'scheduler' };

/** Audit action of a tenant key rotation, the same as POST /projects/:id/key/rotate. */
const rotateAction = 'projects.key.rotate';

/** Result of one scheduled run, one entry per project. */
export interface ScheduledTenantRotationRun {
  rotated: RotationRecord[];
  skipped: { projectId: string; reason: string }[];
  failed: { projectId: string; error: string }[];
}

/** Parts of the tenants domain and the appliance that a scheduled run uses. */
export interface ScheduledTenantRotationContext {
  database: Database;
  projects: Pick<ProjectService, 'keyedProjects' | 'checkKey'>;
  rotation: Pick<TenantKeyRotation, 'rotate' | 'startRewrap'>;
  audit: Pick<AuditTrail, 'append'>;
}

/**
 * Starts a rotation of the tenant key of every project whose key is active,
 * with the scheduler as operator, and starts each rewrap in the background.
 * It skips revoked projects, destroyed keys and projects with a rotation
 * still running. Any other failure of one project (customer token missing,
 * PIN rejected) is logged and audited as a failure, and the run goes on
 * with the next project.
 */
export async function rotateTenantKeysOnSchedule(
  context: ScheduledTenantRotationContext,
): Promise<ScheduledTenantRotationRun> {
  const run: ScheduledTenantRotationRun = { rotated: [], skipped: [], failed: [] };

  for (const project of context.projects.keyedProjects()) {
    const skipReason = project.revoked
      ? 'the key is revoked'
      : await findSkipReason(context, project);
    if (skipReason !== undefined) {
      logger.info(
        { projectId: project.id, reason: skipReason },
        'scheduled tenant key rotation skipped',
      );
      run.skipped.push({ projectId: project.id, reason: skipReason });
      continue;
    }

    try {
      const record = await context.rotation.rotate(
        project.id,
        scheduler,
        commitNamingProject(context, project.id),
      );
      logger.info(
        {
          projectId: project.id,
          rotationId: record.id,
          fromVersion: record.fromVersion,
          toVersion: record.toVersion,
        },
        'scheduled tenant key rotation started',
      );
      context.rotation.startRewrap(record.id);
      run.rotated.push(record);
    } catch (error) {
      // A rotation started between the check above and this one is a skip, not a failure.
      if (error instanceof ProblemError && error.status === 409) {
        logger.info(
          { projectId: project.id, detail: error.detail },
          'scheduled tenant key rotation skipped',
        );
        run.skipped.push({ projectId: project.id, reason: error.detail });
        continue;
      }
      const message = errorText(error);
      logger.error({ err: error, projectId: project.id }, 'scheduled tenant key rotation failed');
      await auditFailure(context, project.id, message);
      run.failed.push({ projectId: project.id, error: message });
    }
  }

  logger.info(
    { rotated: run.rotated.length, skipped: run.skipped.length, failed: run.failed.length },
    'scheduled tenant key rotation run finished',
  );
  return run;
}

/**
 * Returns why the project's key is not rotated in this run, or undefined to
 * rotate it. A key missing from its token is destroyed and skipped. Other
 * unavailable keys are left to rotate(), which fails and so gets audited.
 */
async function findSkipReason(
  context: ScheduledTenantRotationContext,
  project: KeyedProject,
): Promise<string | undefined> {
  const projectId = project.id;
  const versions = await listTenantKeyVersions(context.database, projectId);
  const active = versions.find((version) => version.state === 'active');
  if (!active) return 'no active key version';

  try {
    if (project.keyMode === 'customer') context.projects.checkKey(active.keyUri);
  } catch (error) {
    if (error instanceof TenantKeyUnavailableError && error.reason === 'key_missing') {
      return 'the key is destroyed';
    }
  }

  const [running] = await listRotations(context.database, {
    state: 'running',
    limit: 1,
    projectId,
  });
  return running ? `rotation ${running.id} is still running` : undefined;
}

/**
 * Builds an AuditedCommit that audits the rotation in its own transaction,
 * naming the project and the rotation as POST /projects/:id/key/rotate does.
 */
function commitNamingProject(
  context: ScheduledTenantRotationContext,
  projectId: string,
): AuditedCommit {
  return (work) =>
    context.database.write(async (transaction) => {
      const result = await work(transaction);
      const rotationId = (result as { id: string }).id;
      await context.audit.append(
        auditEntry(projectId, 'success', `rotation ${rotationId}`),
        transaction,
      );
      return result;
    });
}

/** Appends the failure record of one project; a failure to append is logged, since the rotation did not happen. */
async function auditFailure(
  context: ScheduledTenantRotationContext,
  projectId: string,
  message: string,
): Promise<void> {
  try {
    await context.database.write((transaction) =>
      context.audit.append(auditEntry(projectId, 'failure', message), transaction),
    );
  } catch (error) {
    logger.error(
      { err: error, projectId },
      'auditing a failed scheduled tenant key rotation failed',
    );
  }
}

function auditEntry(projectId: string, outcome: AuditEntry['outcome'], reason: string): AuditEntry {
  return {
    requestId: crypto.randomUUID(),
    actor: { username: scheduler.actor },
    action: rotateAction,
    resource: { type: 'project', id: projectId },
    outcome,
    sourceIp: 'local',
    reason,
  };
}

/** Returns the secret-free text of a failure: a problem's detail or an error's message. */
function errorText(error: unknown): string {
  if (error instanceof ProblemError) return error.detail;
  return error instanceof Error ? error.message : String(error);
}
