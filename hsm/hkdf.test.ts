import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { hkdfInfo, hkdfSha256 } from './hkdf';

describe('HKDF-SHA256 helper', function () {
  it('builds info strings of the scheme', function () {
    assert.equal(hkdfInfo('checkpoint-id', 42), 'prompt-bank-appliance/v1/checkpoint-id/42');
    assert.equal(hkdfInfo('data-key'), 'prompt-bank-appliance/v1/data-key');
  });

  it('rejects ambiguous info parts', function () {
    assert.throws(() => hkdfInfo('Checkpoint'), /Invalid HKDF purpose "Checkpoint"/);
    assert.throws(() => hkdfInfo('checkpoint-id', 'a/b'), /Invalid HKDF context part "a\/b"/);
    assert.throws(() => hkdfInfo('checkpoint-id', ''), /Invalid HKDF context part ""/);
  });

  it('rejects raw info and bad lengths', function () {
    const ikm = Buffer.alloc(32, 1);
    assert.throws(() => hkdfSha256(ikm, Buffer.alloc(0), 'raw', 32), /build it with hkdfInfo/);
    assert.throws(() => hkdfSha256(ikm, Buffer.alloc(0), hkdfInfo('x'), 0), /output length 0/);
    assert.throws(() => hkdfSha256(ikm, Buffer.alloc(0), hkdfInfo('x'), 8161), /length 8161/);
  });

  it('separates purposes and contexts', function () {
    const ikm = Buffer.alloc(32, 7);
    const salt = Buffer.alloc(0);
    const first = hkdfSha256(ikm, salt, hkdfInfo('checkpoint-id', 1), 32);
    const second = hkdfSha256(ikm, salt, hkdfInfo('checkpoint-id', 2), 32);
    const other = hkdfSha256(ikm, salt, hkdfInfo('export-key', 1), 32);

    assert.notDeepEqual(first, second);
    assert.notDeepEqual(first, other);
  });

  it('matches openssl kdf HKDF output', function () {
    const ikm = Buffer.from('0b'.repeat(22), 'hex');
    const salt = Buffer.from('000102030405060708090a0b0c', 'hex');
    const info = hkdfInfo('checkpoint-id', 7);

    const expected = execFileSync(
      'openssl',
      [
        'kdf',
        '-keylen',
        '42',
        '-kdfopt',
        'digest:SHA256',
        '-kdfopt',
        `hexkey:${ikm.toString('hex')}`,
        '-kdfopt',
        `hexsalt:${salt.toString('hex')}`,
        '-kdfopt',
        `info:${info}`,
        'HKDF',
      ],
      { encoding: 'utf8' },
    )
      .trim()
      .replaceAll(':', '')
      .toLowerCase();

    assert.equal(hkdfSha256(ikm, salt, info, 42).toString('hex'), expected);
  });
});
