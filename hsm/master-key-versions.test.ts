import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';

import { HsmError } from './errors';
import type { KeyProvider } from './key-provider';
import { openKeyProvider } from './pkcs11-key-provider';
import { formatPkcs11Uri, parsePkcs11Uri } from './pkcs11-uri';
import {
  createCapturingLogger,
  createTestTokenDir,
  runPkcs11Tool,
  type TestTokenDir,
} from './test-support';
import { ensureToken } from './token-setup';

describe('master key versions @integration', () => {
  let token: TestTokenDir;
  let provider: KeyProvider;

  before(() => {
    const quiet = { logger: createCapturingLogger().logger };
    token = createTestTokenDir('versions-test');
    ensureToken({ hsm: token.hsm }, quiet);
    provider = openKeyProvider({ hsm: token.hsm }, quiet);
  });

  after(() => {
    provider?.close();
    token?.remove();
  });

  it('generates a non-extractable version 2', () => {
    const uri = provider.createMasterKeyVersion(2);
    const locator = parsePkcs11Uri(uri);
    assert.equal(locator?.object, 'vault-master-v2');
    assert.equal(locator?.id?.length, 16);

    const pin = fs.readFileSync(token.hsm.pinFile, 'utf8').trim();
    const listing = runPkcs11Tool(token.hsm, [
      '--login',
      '--pin',
      pin,
      '--list-objects',
      '--type',
      'secrkey',
    ]);
    const block = listing
      .split(/\n(?=Secret Key Object)/)
      .find((part) => part.includes('vault-master-v2'));
    assert.ok(block, listing);
    assert.match(block, /ID:\s+([0-9a-f]+)/);
    assert.equal(/ID:\s+([0-9a-f]+)/.exec(block)![1], locator!.id!.toString('hex'));
    assert.match(block, /Access:\s+.*sensitive/);
    assert.match(block, /never extractable/);
  });

  it('rewraps from version 1 to version 2', () => {
    const uri = provider.createMasterKeyVersion(3);
    const dataKey = crypto.randomBytes(32);
    const underV1 = provider.wrapDataKey(dataKey);

    const underV3 = provider.rewrapDataKey(underV1, provider.masterKeyUri, uri);
    assert.equal(underV3.length, 40);
    assert.notDeepEqual(underV3, underV1);
    assert.deepEqual(provider.unwrapDataKey(underV3, uri), dataKey);
    assert.throws(
      () => provider.unwrapDataKey(underV3),
      (error: unknown) => {
        return error instanceof HsmError && error.code === 'hsm_unwrap_failed';
      },
    );
  });

  it('rejects a URI that names no master key version', () => {
    for (const uri of [
      'pkcs11:token=versions-test;object=audit-hmac;type=secret-key',
      formatPkcs11Uri({
        token: 'versions-test',
        object: 'audit-hmac',
        id: Buffer.alloc(16),
        type: 'secret-key',
      }),
      formatPkcs11Uri({
        token: 'versions-test',
        object: 'vault-master-v9',
        id: Buffer.alloc(16),
        type: 'secret-key',
      }),
      'not a uri',
    ]) {
      assert.throws(
        () => provider.unwrapDataKey(Buffer.alloc(40), uri),
        (error: unknown) => error instanceof HsmError && error.code === 'hsm_key_missing',
        uri,
      );
    }
  });

  it('destroys a version but never version 1', () => {
    const uri = provider.createMasterKeyVersion(4);
    provider.destroyMasterKeyVersion(uri);
    assert.throws(() => provider.wrapDataKey(crypto.randomBytes(32), uri), HsmError);
    assert.throws(() => provider.destroyMasterKeyVersion(provider.masterKeyUri), /version 1/);
  });
});

describe('PKCS#11 URI', () => {
  it('round-trips a CKA_ID', () => {
    const id = Buffer.from('00ff10', 'hex');
    const uri = formatPkcs11Uri({
      token: 'a b',
      object: 'vault-master-v2',
      id,
      type: 'secret-key',
    });
    assert.equal(uri, 'pkcs11:token=a%20b;object=vault-master-v2;id=%00%FF%10;type=secret-key');
    assert.deepEqual(parsePkcs11Uri(uri), {
      token: 'a b',
      object: 'vault-master-v2',
      id,
      type: 'secret-key',
    });
  });

  it('rejects malformed URIs', () => {
    assert.equal(parsePkcs11Uri('pkcs11:token=a;object=b'), undefined);
    assert.equal(parsePkcs11Uri('pkcs11:token=a;object=b;type=key'), undefined);
    assert.equal(parsePkcs11Uri('pkcs11:token=a;object=b;id=zz;type=secret-key'), undefined);
    assert.equal(parsePkcs11Uri('https://127.0.0.1/'), undefined);
  });
});
