import type { AuditRecord } from './record';

/** prevHash of the first record in the chain. */
export const genesisHash = '0'.repeat(64);

/**
 * Canonical form of a record: a JSON array of its fields in a fixed order.
 *
 * IMPORTANT: this layout is part of the stored chain. Changing the order, the
 * fields or their encoding breaks verification of every existing record;
 * a new layout needs a new chain version.
 */
export function canonicalForm(record: Omit<AuditRecord, 'hash'>): string {
  return JSON.stringify([
    'v1',
    record.seq,
    record.time,
    record.requestId,
    record.actor.userId ?? null,
    record.actor.username ?? null,
    record.actor.role ?? null,
    record.action,
    record.resource.type,
    record.resource.id ?? null,
    record.outcome,
    record.sourceIp,
    record.reason ?? null,
    record.prevHash,
  ]);
}

/** The bytes the HSM's audit HMAC key signs: previous hash, a newline, then the canonical form. */
export function chainInput(record: Omit<AuditRecord, 'hash'>): Buffer {
  return Buffer.from(`${record.prevHash}\n${canonicalForm(record)}`, 'utf8');
}

/** Outcome of checking the chain from its first record to its head. */
export interface ChainVerification {
  ok: boolean;
  checked: number;
  headSeq: number;
  firstBroken?: { seq: number; reason: string };
}

/**
 * Walks records in seq order and names the first that breaks the chain:
 * a gap in seq (deleted row), a prevHash that does not match the record
 * before it (reordered or deleted row), or a hash that does not match the
 * record's own content (edited row).
 */
export function verifyChain(
  records: Iterable<AuditRecord>,
  hmac: (input: Buffer) => Buffer,
  start: { seq: number; hash: string } = { seq: 0, hash: genesisHash },
): ChainVerification {
  let expectedSeq = start.seq + 1;
  let previousHash = start.hash;
  let checked = 0;

  for (const record of records) {
    if (record.seq !== expectedSeq) {
      return broken(
        checked,
        record.seq,
        `expected seq ${expectedSeq}, found ${record.seq}: a record is missing or out of order`,
      );
    }
    if (record.prevHash !== previousHash) {
      return broken(
        checked,
        record.seq,
        'prevHash does not match the hash of the record before it',
      );
    }
    if (hmac(chainInput(record)).toString('hex') !== record.hash) {
      return broken(
        checked,
        record.seq,
        'hash does not match the record content: the record was altered',
      );
    }

    checked += 1;
    expectedSeq += 1;
    previousHash = record.hash;
  }

  return { ok: true, checked, headSeq: expectedSeq - 1 };
}

function broken(checked: number, seq: number, reason: string): ChainVerification {
  return { ok: false, checked, headSeq: seq, firstBroken: { seq, reason } };
}
