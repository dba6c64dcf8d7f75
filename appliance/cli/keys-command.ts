import os from 'node:os';

import type { Command } from 'commander';

import { HsmError } from '../../hsm/errors';
import { ProblemError } from '../http/problem';
import { KeyRotationService, type KeyOperator } from '../keys/rotation';
import type { RotationProgress, RotationRecord } from '../keys/rotation-records';
import type { RewrapOptions } from '../keys/rewrap-job';
import { auditedCommit } from '../keys/rotation-schedule';
import { openTenants } from '../tenants';
import { setTenantMinimumVersion } from '../tenants/key-retirement';
import { CliError, exitCodes } from './exit-codes';
import { openLocalAppliance, type LocalAppliance } from './local-appliance';

interface RewrapCommandOptions {
  wait?: boolean;
  batchSize: string;
  json?: boolean;
}

interface RotateCommandOptions extends RewrapCommandOptions {
  project?: string;
}

/** Runs a rewrap in this process: the master key's or a project's tenant key's. */
interface RewrapRunner {
  rewrap(id: string, options: RewrapOptions): Promise<RotationProgress>;
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Width of the progress bar in characters. */
const barWidth = 30;

export function registerKeysCommand(program: Command): Command {
  const keys = program
    .command('keys')
    .description('Rotate the vault master key, move data keys to it, and retire old versions.');

  keys
    .command('rotate')
    .description(
      "Generate the next master key version on the token and make it active, or with --project the project's next tenant key version (on its customer token, or wrapped by the master key for an appliance-keyed project). Without --wait, the data keys move at the next appliance start or with `keys rewrap`.",
    )
    .option('--project <id>', "rotate this project's tenant key instead")
    .option('--wait', 'move every data key to the new version now and show the progress')
    .option('--batch-size <count>', 'data keys per database transaction, from 1 to 10000', '200')
    .option('--json', 'print the rotation record as JSON')
    .action(async (options: RotateCommandOptions) => {
      const batchSize = parseBatchSize(options.batchSize);
      if (options.project !== undefined) {
        await rotateProject(options.project, batchSize, options);
        return;
      }
      await withRotation(async (local, rotation, operator) => {
        const record = await rotation.rotate(
          operator,
          auditedCommit(local.database, local.audit, operator, 'keys.master.rotate'),
        );
        printStarted(record, options);
        if (options.wait) await rewrapWithProgress(rotation, record, batchSize, options);
      });
    });

  keys
    .command('rewrap [rotationId]')
    .description(
      "Move data keys still under older key versions to the active one: resume rotation <rotationId> (of the master key or of a project's tenant key), or start a new master key rewrap without an id.",
    )
    .option('--batch-size <count>', 'data keys per database transaction, from 1 to 10000', '200')
    .option('--json', 'print the rotation record as JSON')
    .action(async (rotationId: string | undefined, options: RewrapCommandOptions) => {
      const batchSize = parseBatchSize(options.batchSize);
      await withRotation(async (local, rotation, operator) => {
        const record = rotationId
          ? await auditedCommit(
              local.database,
              local.audit,
              operator,
              'keys.rotation.resume',
            )((transaction) => rotation.reopen(rotationId, transaction))
          : await rotation.rewrapToActive(
              operator,
              auditedCommit(local.database, local.audit, operator, 'keys.master.rewrap'),
            );
        if (record.projectId === null) {
          await rewrapWithProgress(rotation, record, batchSize, options);
          return;
        }
        const tenants = await openTenants(local.config, local.database, local.keys, undefined, {
          resume: false,
        });
        try {
          await rewrapWithProgress(tenants.rotation, record, batchSize, options);
        } finally {
          await tenants.rotation.stop();
          tenants.close();
        }
      });
    });

  keys
    .command('retire')
    .description(
      "Set the minimum decryption version of the master key, or with --project of that project's tenant key: versions below it are retired and open nothing. Rejected while data keys remain under them.",
    )
    .requiredOption(
      '--minimum-version <version>',
      'lowest key version that still unwraps, a whole number of at least 1',
    )
    .option('--project <id>', "retire versions of this project's tenant key")
    .action(async (options: { minimumVersion: string; project?: string }) => {
      const minimum = Number(options.minimumVersion);
      if (!Number.isInteger(minimum) || minimum < 1) {
        throw new CliError(
          `--minimum-version must be a whole number of at least 1, not "${options.minimumVersion}"`,
          exitCodes.usage,
        );
      }
      if (options.project !== undefined) {
        await retireProjectVersions(requireProjectId(options.project), minimum);
        return;
      }
      await withRotation(async (local, rotation, operator) => {
        const versions = await auditedCommit(
          local.database,
          local.audit,
          operator,
          'keys.master.retire',
        )((transaction) => rotation.setMinimumVersion(minimum, transaction));
        for (const version of versions) console.log(`v${version.version}  ${version.state}`);
      });
    });

  keys
    .command('status [rotationId]')
    .description('Show the master key versions, or one rotation with its progress.')
    .option('--json', 'print JSON')
    .action(async (rotationId: string | undefined, options: { json?: boolean }) => {
      await withRotation(async (local, rotation) => {
        await local.recordCliAction(
          rotationId ? 'keys.rotation.read' : 'keys.master.list',
          rotationId ? 'key-rotation' : 'master-key',
        );
        if (rotationId) {
          const record = await rotation.get(rotationId);
          if (!record) throw new CliError(`no key rotation ${rotationId}`, exitCodes.usage);
          if (options.json) console.log(JSON.stringify(record, null, 2));
          else console.log(describeRotation(record));
          return;
        }

        const versions = await rotation.versions();
        if (options.json) console.log(JSON.stringify(versions, null, 2));
        else
          for (const version of versions)
            console.log(`v${version.version}  ${version.state}  ${version.keyUri}`);
      });
    });

  return keys;
}

function parseBatchSize(raw: string): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 10_000) {
    throw new CliError(
      `--batch-size must be a whole number from 1 to 10000, not "${raw}"`,
      exitCodes.usage,
    );
  }
  return value;
}

/**
 * Rotates the tenant master key of `projectId` with the tenant key ring of
 * this process, which logs in to the customer token with the project's PIN
 * file. The running appliance reads the new version from the database.
 */
async function rotateProject(
  projectId: string,
  batchSize: number,
  options: RewrapCommandOptions,
): Promise<void> {
  requireProjectId(projectId);
  await withRotation(async (local, _rotation, operator) => {
    const tenants = await openTenants(local.config, local.database, local.keys, undefined, {
      resume: false,
    });
    try {
      const record = await tenants.rotation.rotate(
        projectId,
        operator,
        auditedCommit(local.database, local.audit, operator, 'projects.key.rotate', 'tenant-key'),
      );
      printStarted(record, options);
      if (options.wait) await rewrapWithProgress(tenants.rotation, record, batchSize, options);
    } finally {
      await tenants.rotation.stop();
      tenants.close();
    }
  });
}

/**
 * Retires the tenant key versions of `projectId` below `minimum`. It changes
 * only the database, so it needs no login to the customer token, and the
 * running appliance applies it at the next read.
 */
async function retireProjectVersions(projectId: string, minimum: number): Promise<void> {
  await withRotation(async (local, _rotation, operator) => {
    // The result's id becomes the audit record's resource id: the project.
    const { versions } = await auditedCommit(
      local.database,
      local.audit,
      operator,
      'projects.key.retire',
      'tenant-key',
    )(async (transaction) => ({
      id: projectId,
      versions: await setTenantMinimumVersion(local.database, projectId, minimum, transaction),
    }));
    for (const version of versions) console.log(`v${version.version}  ${version.state}`);
  });
}

function requireProjectId(projectId: string): string {
  if (!uuidPattern.test(projectId)) {
    throw new CliError(
      `--project must be a project id (UUID) from GET /api/v1/projects, not "${projectId}"`,
      exitCodes.usage,
    );
  }
  return projectId;
}

/** Opens the local appliance, runs `work`, maps API problems and HSM errors to exit codes, and closes. */
async function withRotation(
  work: (
    local: LocalAppliance,
    rotation: KeyRotationService,
    operator: KeyOperator,
  ) => Promise<void>,
): Promise<void> {
  const local = await openLocalAppliance();
  const rotation = new KeyRotationService(local.database, local.keys);
  const operator: KeyOperator = { trigger: 'cli', actor: `cli:${os.userInfo().username}` };
  try {
    await work(local, rotation, operator);
  } catch (error) {
    if (error instanceof ProblemError) {
      const fields =
        error.errors?.map((field) => ` ${field.field} ${field.message}.`).join('') ?? '';
      throw new CliError(
        `${error.detail}${fields}`,
        error.status >= 500 ? exitCodes.unavailable : exitCodes.usage,
      );
    }
    if (error instanceof HsmError) throw new CliError(error.message, exitCodes.unavailable);
    throw error;
  } finally {
    await rotation.stop();
    await local.close();
  }
}

function printStarted(record: RotationRecord, options: RewrapCommandOptions): void {
  if (options.json && !options.wait) {
    console.log(JSON.stringify(record, null, 2));
    return;
  }
  console.log(
    `rotation ${record.id}: ${keyName(record)} v${record.fromVersion} -> v${record.toVersion} (${record.keyUri}), ${record.total} data keys to move`,
  );
}

/** Runs the rewrap in this process and draws a bar on a TTY, else one line per tenth done. */
async function rewrapWithProgress(
  rotation: RewrapRunner,
  record: RotationRecord,
  batchSize: number,
  options: RewrapCommandOptions,
): Promise<void> {
  const tty = process.stderr.isTTY === true;
  let lastTenth = -1;

  const onProgress = (progress: RotationProgress) => {
    const total = Math.max(progress.total, progress.done, 1);
    const fraction = progress.done / total;
    if (tty) {
      const filled = Math.round(fraction * barWidth);
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(barWidth - filled)}] ${Math.floor(fraction * 100)}% ${progress.done}/${progress.total} data keys`,
      );
      return;
    }
    const tenth = Math.floor(fraction * 10);
    if (tenth !== lastTenth) {
      lastTenth = tenth;
      console.log(`rewrap ${progress.done}/${progress.total} data keys`);
    }
  };

  const finished = await rotation.rewrap(record.id, { batchSize, onProgress });
  if (tty) process.stderr.write('\n');

  if (options.json) console.log(JSON.stringify(finished, null, 2));
  else console.log(describeRotation(finished));
  if (finished.state !== 'completed') {
    throw new CliError(
      `the rewrap of rotation ${record.id} ended ${finished.state}${finished.error ? `: ${finished.error}` : ''}; resume it with \`appliancectl keys rewrap ${record.id}\``,
      exitCodes.partial,
    );
  }
}

function describeRotation(record: RotationRecord): string {
  const duration = record.durationMs === null ? '' : ` in ${record.durationMs} ms`;
  return `rotation ${record.id}: ${record.state}, ${record.done}/${record.total} data keys moved to ${keyName(record)} v${record.toVersion}${duration} (started ${record.startedAt} by ${record.actor})`;
}

function keyName(record: RotationRecord): string {
  return record.projectId === null ? 'master key' : `tenant key of project ${record.projectId}`;
}
