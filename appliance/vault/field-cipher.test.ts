import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import {
  IntegrityError,
  associatedData,
  openField,
  sealField,
  type FieldLocation,
} from './field-cipher';

describe('vault field cipher', () => {
  const key = crypto.randomBytes(32);
  const promptId = crypto.randomUUID();
  const title: FieldLocation = { promptId, version: 0, field: 'title' };
  const plaintext = 'Summarise the ticket in three bullet points. ✓';

  it('round-trips UTF-8 text', () => {
    const sealed = sealField(key, title, plaintext);

    assert.equal(openField(key, title, sealed), plaintext);
  });

  it('round-trips an empty string', () => {
    assert.equal(openField(key, title, sealField(key, title, '')), '');
  });

  it('stores no plaintext and uses a fresh nonce each time', () => {
    const first = sealField(key, title, plaintext);
    const second = sealField(key, title, plaintext);

    assert.equal(first.includes(Buffer.from('bullet points')), false);
    assert.notDeepEqual(first.subarray(1, 13), second.subarray(1, 13));
    assert.notDeepEqual(first, second);
    assert.equal(first.length, 1 + 12 + Buffer.byteLength(plaintext) + 16);
  });

  it('rejects a value moved to another field', () => {
    const sealed = sealField(key, title, plaintext);

    assert.throws(() => openField(key, { ...title, field: 'description' }, sealed), IntegrityError);
  });

  it('rejects a value moved to another version', () => {
    const body: FieldLocation = { promptId, version: 1, field: 'body' };
    const sealed = sealField(key, body, plaintext);

    assert.throws(() => openField(key, { ...body, version: 2 }, sealed), IntegrityError);
  });

  it('rejects a value moved to another prompt', () => {
    const sealed = sealField(key, title, plaintext);

    assert.throws(
      () => openField(key, { ...title, promptId: crypto.randomUUID() }, sealed),
      IntegrityError,
    );
  });

  it('rejects a changed byte anywhere', () => {
    const sealed = sealField(key, title, plaintext);

    for (const offset of [0, 1, 12, 13, sealed.length - 17, sealed.length - 1]) {
      const altered = Buffer.from(sealed);
      altered[offset] ^= 0x01;
      assert.throws(() => openField(key, title, altered), IntegrityError, `byte ${offset} changed`);
    }
  });

  it('rejects a truncated value', () => {
    const sealed = sealField(key, title, plaintext);

    assert.throws(
      () => openField(key, title, sealed.subarray(0, sealed.length - 1)),
      IntegrityError,
    );
    assert.throws(() => openField(key, title, sealed.subarray(0, 20)), IntegrityError);
    assert.throws(() => openField(key, title, Buffer.alloc(0)), IntegrityError);
  });

  it('rejects the wrong key', () => {
    const sealed = sealField(key, title, plaintext);

    assert.throws(() => openField(crypto.randomBytes(32), title, sealed), IntegrityError);
  });

  it('names the prompt and part, never the content', () => {
    const sealed = sealField(key, title, plaintext);

    assert.throws(
      () => openField(key, { ...title, field: 'tags' }, sealed),
      (error: unknown) => {
        assert.ok(error instanceof IntegrityError);
        assert.equal(error.promptId, promptId);
        assert.equal(error.part, 'tags of version 0');
        assert.equal(error.message.includes('bullet'), false);
        return true;
      },
    );
  });

  it('refuses a key that is not 32 bytes', () => {
    assert.throws(() => sealField(crypto.randomBytes(16), title, plaintext), /32 bytes/);
  });

  it('binds every part of the location into the AAD', () => {
    const base = associatedData(title).toString('utf8');

    assert.notEqual(associatedData({ ...title, version: 1 }).toString('utf8'), base);
    assert.notEqual(associatedData({ ...title, field: 'body' }).toString('utf8'), base);
    assert.ok(base.includes(promptId));
  });
});
