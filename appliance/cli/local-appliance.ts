import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';

import { openKeyProvider } from '../../hsm';
import type { KeyProvider } from '../../hsm/key-provider';
import { CheckpointingAuditTrail } from '../audit/checkpoints-trail';
import type { AuditEntry } from '../audit/trail';
import { loadConfig, type ApplianceConfig } from '../platform/config';
import type { Database } from '../platform/database';
import { openApplianceDatabase } from '../platform/database-encryption';
import { CliError, exitCodes } from './exit-codes';

/** The appliance's database, HSM and audit trail, opened from the local data directory. */
export interface LocalAppliance {
  config: ApplianceConfig;
  database: Database;
  keys: KeyProvider;
  audit: CheckpointingAuditTrail;
  /** Appends an audit record for a CLI action, acted by the operating-system user. */
  recordCliAction(
    action: string,
    resourceType: string,
    outcome?: AuditEntry['outcome'],
  ): Promise<void>;
  close(): Promise<void>;
}

/**
 * Opens the stores of an appliance that has started at least once. Commands
 * run beside a running appliance: SQLite serialises the writers of both
 * processes, and each process has its own PKCS#11 session.
 */
export async function openLocalAppliance(): Promise<LocalAppliance> {
  const config = loadConfig();
  if (!fs.existsSync(config.databaseFile)) {
    throw new CliError(
      `no appliance database at ${config.databaseFile}; start the appliance once or set APPLIANCE_DATA_DIR`,
      exitCodes.usage,
    );
  }

  let keys: KeyProvider;
  try {
    keys = openKeyProvider(config);
  } catch (error) {
    throw new CliError(
      `the HSM is not available: ${error instanceof Error ? error.message : String(error)}`,
      exitCodes.unavailable,
    );
  }

  const database = await openApplianceDatabase(config, keys);
  const audit = new CheckpointingAuditTrail(database, keys, {
    records: config.audit.checkpointRecords,
    minutes: config.audit.checkpointMinutes,
  });
  const operator = `cli:${os.userInfo().username}`;

  return {
    config,
    database,
    keys,
    audit,
    async recordCliAction(action, resourceType, outcome = 'success') {
      try {
        await audit.appendAlone({
          requestId: crypto.randomUUID(),
          actor: { username: operator },
          action,
          resource: { type: resourceType },
          outcome,
          sourceIp: 'local',
        });
      } catch (error) {
        throw new CliError(
          `the audit record could not be written, so the command was refused: ${error instanceof Error ? error.message : String(error)}`,
          exitCodes.unavailable,
        );
      }
    },
    async close() {
      await audit.stop();
      await database.close();
      keys.close();
    },
  };
}
