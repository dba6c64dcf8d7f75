import crypto from 'node:crypto';

import type { Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { AuditEntry } from '../audit/trail';
import type { AuditTrail } from '../audit/trail';
import type { Database } from '../platform/database';
import { RecoveryInputError } from './errors';
import { escrowMissingTotpKeys } from '../keys/totp-keys';
import { escrowMissingTenantKeys } from '../tenants/tenant-key-escrow';
import {
  escrowMissingDataKeys,
  readRecoveryKey,
  saveRecoveryKey,
  type RecoveryKeyRecord,
} from './escrow';
import { RecoveryKey } from './recovery-key';
import { splitRecoveryKey } from './shares';

/** Opened appliance parts that a recovery command uses. */
export interface RecoveryContext {
  database: Database;
  keys: KeyProvider;
  audit: Pick<AuditTrail, 'append'>;
  /** Audit actor: `cli:<os user>`. */
  operator: string;
}

export interface InitOptions {
  custodians: string[];
  threshold: number;
  /** Replace an existing recovery key; its escrow rows are rewritten under the new one. */
  replace?: boolean;
}

export interface InitResult {
  fingerprint: string;
  shares: { custodian: string; share: string }[];
  /** Keys escrowed under the new recovery key, by kind. */
  escrowed: EscrowCount;
}

const custodianPattern = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
/** Limits of shamir-secret-sharing: 2 to 255 shares and threshold. */
const maxShares = 255;

/**
 * Makes a new recovery key in memory, splits it among the custodians, stores
 * its fingerprint and public key, and escrows every prompt and TOTP data key
 * under it, all in one write with its audit records. The shares are returned for printing
 * once; neither they nor the key are stored.
 */
export async function initRecovery(
  context: RecoveryContext,
  options: InitOptions,
): Promise<InitResult> {
  checkCustodians(options.custodians, options.threshold);

  const key = RecoveryKey.generate();
  try {
    const keyBytes = key.bytes();
    const shares = await splitRecoveryKey(keyBytes, options.custodians.length, options.threshold);
    keyBytes.fill(0);

    const record = {
      fingerprint: key.fingerprint(),
      publicKey: key.publicKey(),
      shareCount: options.custodians.length,
      threshold: options.threshold,
      custodians: options.custodians,
      createdBy: context.operator,
      createdAt: new Date().toISOString(),
    };

    const escrowed = await context.database.write(async (transaction) => {
      const existing = await readRecoveryKey(context.database, transaction);
      if (existing && !options.replace) {
        throw new RecoveryInputError(
          `a recovery key already exists (fingerprint ${existing.fingerprint.slice(0, 8)}, ${existing.threshold} of ${existing.shareCount} shares, made ${existing.createdAt}); pass --replace to make a new one and void the old shares`,
        );
      }
      await saveRecoveryKey(context.database, record, transaction);
      const count = await escrowMissing(context, record, transaction);

      const reason = `recovery key ${record.fingerprint.slice(0, 8)}: ${options.threshold} of ${options.custodians.length} shares for ${options.custodians.join(', ')}${existing ? `; replaced ${existing.fingerprint.slice(0, 8)}` : ''}`;
      await context.audit.append(
        auditEntry(context, 'recovery.init', record.fingerprint, reason),
        transaction,
      );
      await context.audit.append(
        auditEntry(context, 'recovery.escrow', record.fingerprint, escrowNote(count)),
        transaction,
      );
      return count;
    });

    return {
      fingerprint: record.fingerprint,
      shares: options.custodians.map((custodian, index) => ({
        custodian,
        share: shares[index],
      })),
      escrowed,
    };
  } finally {
    key.destroy();
  }
}

/**
 * Escrows the prompt and TOTP data keys and the tenant keys that have no
 * escrow row yet; needs no shares, only the stored public key. Returns how
 * many it escrowed.
 */
export async function syncEscrow(context: RecoveryContext): Promise<EscrowCount> {
  return context.database.write(async (transaction) => {
    const record = await readRecoveryKey(context.database, transaction);
    if (!record) {
      throw new RecoveryInputError(
        'no recovery key exists yet; run `appliancectl recovery init --custodian NAME ... --threshold K` first',
      );
    }
    const count = await escrowMissing(context, record, transaction);
    await context.audit.append(
      auditEntry(context, 'recovery.escrow', record.fingerprint, escrowNote(count)),
      transaction,
    );
    return count;
  });
}

/** Escrow counts of one run: prompt data keys, TOTP data keys and appliance tenant key versions. */
export interface EscrowCount {
  prompts: number;
  totp: number;
  tenant: number;
}

/**
 * Escrows the prompt data keys, the TOTP data keys and the appliance tenant
 * keys that have no escrow copy under `record`. Keys made before the
 * recovery key existed have none. Without an escrow copy a restore deletes
 * the TOTP authenticator, and it rejects a backup whose tenant key has none.
 */
async function escrowMissing(
  context: RecoveryContext,
  record: RecoveryKeyRecord,
  transaction: Transaction,
): Promise<EscrowCount> {
  const prompts = await escrowMissingDataKeys(context.database, context.keys, record, transaction);
  const totp = await escrowMissingTotpKeys(context.database, context.keys, record, transaction);
  const tenant = await escrowMissingTenantKeys(context.database, context.keys, record, transaction);
  return { prompts, totp, tenant };
}

function escrowNote(count: EscrowCount): string {
  return `${count.prompts + count.totp} data keys escrowed (${count.totp} of them TOTP) and ${count.tenant} tenant keys`;
}

/**
 * Describes an escrow run for the operator. Prompts in appliance-keyed
 * projects have no data key escrow of their own: their tenant key version
 * is escrowed instead, so the counts need not match the number of prompts.
 */
export function describeEscrow(count: EscrowCount): string {
  const total = count.prompts + count.totp + count.tenant;
  return `${total} keys escrowed (${count.prompts} prompt data keys, ${count.totp} TOTP keys, ${count.tenant} tenant key versions)`;
}

export function auditEntry(
  context: Pick<RecoveryContext, 'operator'>,
  action: string,
  resourceId: string,
  reason: string,
): AuditEntry {
  return {
    requestId: crypto.randomUUID(),
    actor: { username: context.operator },
    action,
    resource: { type: 'recovery_key', id: resourceId.slice(0, 64) },
    outcome: 'success',
    sourceIp: 'local',
    reason: reason.slice(0, 512),
  };
}

function checkCustodians(custodians: string[], threshold: number): void {
  if (custodians.length < 2 || custodians.length > maxShares) {
    throw new RecoveryInputError(
      `--custodian: give 2 to ${maxShares} custodians, one --custodian NAME each (got ${custodians.length})`,
    );
  }
  for (const name of custodians) {
    if (!custodianPattern.test(name)) {
      throw new RecoveryInputError(
        `--custodian ${JSON.stringify(name)}: use 1 to 64 letters, digits, dot, underscore, @ or hyphen, starting with a letter or digit`,
      );
    }
  }
  const duplicate = custodians.find((name, index) => custodians.indexOf(name) !== index);
  if (duplicate) {
    throw new RecoveryInputError(
      `--custodian ${duplicate} is a duplicate; each custodian receives one share`,
    );
  }
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > custodians.length) {
    throw new RecoveryInputError(
      `--threshold must be a whole number from 2 to the number of custodians (${custodians.length})`,
    );
  }
}
