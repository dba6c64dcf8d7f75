import type { Database } from '../platform/database';
import { readState } from '../platform/state';
import { verifyChain, type ChainVerification } from './chain';
import type { AuditRecord } from './record';

/**
 * appliance_state key under which `appliancectl recovery restore` stores
 * the seal of the old chain (appliance/recovery/restore.ts writes it).
 */
export const auditSealStateKey = 'recovery.restored';

/** Action of the record that a restore appends right after the sealed head. */
export const sealRecordAction = 'recovery.restore';

/**
 * The seal a restore stores: the head of the chain HMACed by the old
 * token, which the new token's audit key cannot check, and the old token's
 * signing public key for the checkpoints up to it.
 */
export interface AuditSeal {
  seq: number;
  hash: string;
  backupSha256?: string;
  restoredAt?: string;
  /** SubjectPublicKeyInfo PEM of the old token's signing key. */
  signingPublicKeyPem?: string;
}

/** Reads the seal of the latest restore, or undefined when the appliance was never restored. */
export async function readAuditSeal(database: Database): Promise<AuditSeal | undefined> {
  const value = await readState(database, auditSealStateKey);
  if (value === undefined) return undefined;

  const parsed = JSON.parse(value) as Partial<AuditSeal>;
  if (!Number.isInteger(parsed.seq) || typeof parsed.hash !== 'string') {
    throw new Error(
      `appliance_state "${auditSealStateKey}" has no seq and hash of a sealed chain head`,
    );
  }
  return parsed as AuditSeal;
}

/**
 * Verifies a chain that a restore sealed. Records up to the sealed head
 * carry HMACs of the old token's key, so only their order and links are
 * checked here. That is seq without gaps from 1, each prevHash equal to the
 * hash before it, and the head's hash equal to the sealed hash. Their content is
 * covered by the old token's signed checkpoints. The record after the head
 * must be the restore's `recovery.restore` record with prevHash equal to
 * the sealed hash, and it and every later record are checked with `hmac`
 * as usual. So an edited seal, seal record or later record breaks the chain.
 */
export function verifySealedChain(
  records: AuditRecord[],
  seal: AuditSeal,
  hmac: (input: Buffer) => Buffer,
): ChainVerification {
  const sealed = records.filter((record) => record.seq <= seal.seq);
  const linked = verifyLinks(sealed, seal);
  if (!linked.ok) return linked;

  const after = records.filter((record) => record.seq > seal.seq);
  const first = after[0];
  if (!first || first.action !== sealRecordAction) {
    return broken(
      linked.checked,
      seal.seq + 1,
      `the record after the sealed head seq ${seal.seq} is not the ${sealRecordAction} record that seals it`,
    );
  }

  const rest = verifyChain(after, hmac, { seq: seal.seq, hash: seal.hash });
  return { ...rest, checked: linked.checked + rest.checked };
}

/** Checks seq and prevHash links up to the sealed head, without the HMACs. */
function verifyLinks(records: AuditRecord[], seal: AuditSeal): ChainVerification {
  let previous: AuditRecord | undefined;
  for (const record of records) {
    const expectedSeq = (previous?.seq ?? 0) + 1;
    if (record.seq !== expectedSeq) {
      return broken(
        expectedSeq - 1,
        record.seq,
        `expected seq ${expectedSeq}, found ${record.seq}: a record before the sealed head is missing`,
      );
    }
    if (previous && record.prevHash !== previous.hash) {
      return broken(
        expectedSeq - 1,
        record.seq,
        'prevHash does not match the hash of the record before it (before the sealed head)',
      );
    }
    previous = record;
  }

  if (!previous || previous.seq !== seal.seq || previous.hash !== seal.hash) {
    return broken(
      records.length,
      seal.seq,
      `the sealed head is seq ${seal.seq} hash ${seal.hash}, but the chain has ${previous ? `seq ${previous.seq} hash ${previous.hash}` : 'no record'} there: the seal or the old records were altered`,
    );
  }
  return { ok: true, checked: records.length, headSeq: seal.seq };
}

function broken(checked: number, seq: number, reason: string): ChainVerification {
  return { ok: false, checked, headSeq: seq, firstBroken: { seq, reason } };
}
