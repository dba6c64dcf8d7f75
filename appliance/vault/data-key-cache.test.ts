import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { DataKeyCache } from './data-key-cache';

describe('vault data key cache', () => {
  it('returns a key until its time to live ends', () => {
    let now = 1_000;
    const cache = new DataKeyCache({ ttlMs: 100, now: () => now });
    const key = crypto.randomBytes(32);
    cache.set('a/1', key);

    now = 1_099;
    assert.equal(cache.get('a/1'), key);

    now = 1_100;
    assert.equal(cache.get('a/1'), undefined);
    assert.equal(cache.size, 0);
  });

  it('drops the least recently used key when full', () => {
    const cache = new DataKeyCache({ maxEntries: 2 });
    cache.set('a/1', crypto.randomBytes(32));
    cache.set('b/1', crypto.randomBytes(32));
    cache.get('a/1');
    cache.set('c/1', crypto.randomBytes(32));

    assert.equal(cache.size, 2);
    assert.ok(cache.get('a/1'));
    assert.equal(cache.get('b/1'), undefined);
    assert.ok(cache.get('c/1'));
  });

  it('zeroes every key on clear', () => {
    const cache = new DataKeyCache();
    const key = crypto.randomBytes(32);
    cache.set('a/1', key);

    cache.clear();

    assert.equal(cache.size, 0);
    assert.deepEqual(key, Buffer.alloc(32));
  });

  it('rejects limits that cannot work', () => {
    assert.throws(() => new DataKeyCache({ maxEntries: 0 }), /maxEntries/);
    assert.throws(() => new DataKeyCache({ ttlMs: 0 }), /ttlMs/);
  });
});
