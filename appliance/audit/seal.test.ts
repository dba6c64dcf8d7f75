import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { chainInput, genesisHash } from './chain';
import type { AuditRecord } from './record';
import { sealRecordAction, verifySealedChain, type AuditSeal } from './seal';

/** Two HMAC keys in node:crypto standing for the audit keys of token A and token B. */
const oldKey = crypto.randomBytes(32);
const newKey = crypto.randomBytes(32);
const hmacWith = (key: Buffer) => (input: Buffer) =>
  crypto.createHmac('sha256', key).update(input).digest();

function appendRecord(chain: AuditRecord[], action: string, key: Buffer): void {
  const previous = chain[chain.length - 1];
  const record: Omit<AuditRecord, 'hash'> = {
    seq: (previous?.seq ?? 0) + 1,
    time: new Date(0).toISOString(),
    requestId: crypto.randomUUID(),
    actor: { username: 'test' },
    action,
    resource: { type: 'prompt' },
    outcome: 'success',
    sourceIp: 'local',
    prevHash: previous?.hash ?? genesisHash,
  };
  chain.push({ ...record, hash: hmacWith(key)(chainInput(record)).toString('hex') });
}

/** Builds three records under the old key, the seal record and two records under the new key. */
function restoredChain(): { records: AuditRecord[]; seal: AuditSeal } {
  const records: AuditRecord[] = [];
  for (let i = 0; i < 3; i++) appendRecord(records, 'vault.prompt.create', oldKey);
  const seal = { seq: 3, hash: records[2].hash };
  appendRecord(records, sealRecordAction, newKey);
  for (let i = 0; i < 2; i++) appendRecord(records, 'vault.prompt.read', newKey);
  return { records, seal };
}

describe('audit chain across a restore seal', () => {
  it('intact chain verifies', () => {
    const { records, seal } = restoredChain();
    const result = verifySealedChain(records, seal, hmacWith(newKey));
    assert.equal(result.ok, true, JSON.stringify(result.firstBroken));
    assert.equal(result.checked, 6);
    assert.equal(result.headSeq, 6);
  });

  it('tampered seal hash breaks', () => {
    const { records, seal } = restoredChain();
    const result = verifySealedChain(records, { ...seal, hash: 'f'.repeat(64) }, hmacWith(newKey));
    assert.equal(result.ok, false);
    assert.equal(result.firstBroken?.seq, 3);
    assert.match(result.firstBroken!.reason, /seal or the old records were altered/);
  });

  it('edited seal record breaks', () => {
    const { records, seal } = restoredChain();
    records[3] = { ...records[3], reason: 'edited' };
    const result = verifySealedChain(records, seal, hmacWith(newKey));
    assert.equal(result.firstBroken?.seq, 4);
    assert.match(result.firstBroken!.reason, /altered/);
  });

  it('seal without its record breaks', () => {
    const { records, seal } = restoredChain();
    records[3] = { ...records[3], action: 'vault.prompt.read' };
    const result = verifySealedChain(records, seal, hmacWith(newKey));
    assert.equal(result.firstBroken?.seq, 4);
    assert.match(result.firstBroken!.reason, /not the recovery.restore record/);
  });

  it('deleted old record breaks', () => {
    const { records, seal } = restoredChain();
    records.splice(1, 1);
    const result = verifySealedChain(records, seal, hmacWith(newKey));
    assert.equal(result.firstBroken?.seq, 3);
    assert.match(result.firstBroken!.reason, /expected seq 2, found 3/);
  });

  it('edited record after seal breaks', () => {
    const { records, seal } = restoredChain();
    records[5] = { ...records[5], outcome: 'failure' };
    const result = verifySealedChain(records, seal, hmacWith(newKey));
    assert.equal(result.firstBroken?.seq, 6);
  });
});
