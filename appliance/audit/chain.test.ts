import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { chainInput, genesisHash, verifyChain } from './chain';
import type { AuditRecord } from './record';

// The appliance computes this HMAC in the HSM; the chain rules themselves are
// plain functions of any HMAC, so these unit tests use Node's with a fixed key.
const key = Buffer.alloc(32, 7);
const hmac = (input: Buffer) => crypto.createHmac('sha256', key).update(input).digest();

function buildChain(length: number): AuditRecord[] {
  const records: AuditRecord[] = [];
  let prevHash = genesisHash;
  for (let seq = 1; seq <= length; seq++) {
    const unsigned: Omit<AuditRecord, 'hash'> = {
      seq,
      time: new Date(Date.UTC(2026, 11, 4, 10, 0, seq)).toISOString(),
      requestId: `request-${seq}`,
      actor: { userId: 'u-1', username: 'alice', role: 'author' },
      action: 'vault.prompt.read',
      resource: { type: 'prompt', id: `p-${seq}` },
      outcome: 'success',
      sourceIp: '127.0.0.1',
      prevHash,
    };
    const record = { ...unsigned, hash: hmac(chainInput(unsigned)).toString('hex') };
    records.push(record);
    prevHash = record.hash;
  }
  return records;
}

describe('audit hash chain', function () {
  it('accepts an intact chain', function () {
    const result = verifyChain(buildChain(5), hmac);

    assert.equal(result.ok, true);
    assert.equal(result.checked, 5);
    assert.equal(result.headSeq, 5);
  });

  it('names an edited record', function () {
    const records = buildChain(5);
    records[2] = { ...records[2], outcome: 'failure' };

    const result = verifyChain(records, hmac);

    assert.equal(result.ok, false);
    assert.equal(result.firstBroken?.seq, 3);
    assert.match(result.firstBroken!.reason, /altered/);
  });

  it('names the record after a deleted one', function () {
    const records = buildChain(5);
    records.splice(1, 1);

    const result = verifyChain(records, hmac);

    assert.equal(result.firstBroken?.seq, 3);
    assert.match(result.firstBroken!.reason, /expected seq 2, found 3/);
  });

  it('names reordered records', function () {
    const records = buildChain(5);
    [records[1], records[2]] = [records[2], records[1]];

    const result = verifyChain(records, hmac);

    assert.equal(result.firstBroken?.seq, 3);
  });

  it('detects renumbered records after a deletion', function () {
    const records = buildChain(5);
    records.splice(1, 1);
    records[1] = { ...records[1], seq: 2 };

    const result = verifyChain(records, hmac);

    assert.equal(result.firstBroken?.seq, 2);
    assert.match(result.firstBroken!.reason, /prevHash does not match/);
  });

  it('rejects a record signed with another key', function () {
    const records = buildChain(3);
    const otherKey = (input: Buffer) =>
      crypto.createHmac('sha256', Buffer.alloc(32, 8)).update(input).digest();

    const result = verifyChain(records, otherKey);

    assert.equal(result.firstBroken?.seq, 1);
  });
});
