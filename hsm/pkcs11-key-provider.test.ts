import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { UserType } from 'graphene-pk11';

import { findSecretKey, masterKeyLabel } from './appliance-keys';
import { HsmError, ckrName } from './errors';
import type { KeyProvider } from './key-provider';
import { openKeyProvider } from './pkcs11-key-provider';
import {
  acquireModule,
  login,
  openSession,
  releaseModule,
  requireTokenSlot,
} from './pkcs11-module';
import { createCapturingLogger, createTestTokenDir, type TestTokenDir } from './test-support';
import { ensureToken } from './token-setup';

/** Returns an assert.throws validator for an HsmError with `code` whose message matches `message`. */
function hsmError(code: string, message: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof HsmError, `expected an HsmError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

describe('Pkcs11KeyProvider @integration', () => {
  let token: TestTokenDir;
  let provider: KeyProvider | undefined;
  const quiet = () => ({ logger: createCapturingLogger().logger });

  before(() => {
    token = createTestTokenDir('provider-test');
    ensureToken({ hsm: token.hsm }, quiet());
  });

  after(() => {
    token.remove();
  });

  afterEach(() => {
    provider?.close();
    provider = undefined;
  });

  it('unwraps what it wrapped', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const dataKey = crypto.randomBytes(32);

    const wrapped = provider.wrapDataKey(dataKey);

    assert.equal(wrapped.length, 40);
    assert.ok(!wrapped.includes(dataKey), 'the wrapped bytes contain the data key');
    assert.deepEqual(provider.unwrapDataKey(wrapped), dataKey);
  });

  it('wraps deterministically under one master key', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const dataKey = crypto.randomBytes(32);

    assert.deepEqual(provider.wrapDataKey(dataKey), provider.wrapDataKey(dataKey));
  });

  it('rejects altered wrapped bytes', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const wrapped = provider.wrapDataKey(crypto.randomBytes(32));

    for (const index of [0, 7, 8, 39]) {
      const altered = Buffer.from(wrapped);
      altered[index] ^= 0x01;
      assert.throws(
        () => provider!.unwrapDataKey(altered),
        hsmError('hsm_unwrap_failed', /integrity check/),
      );
    }
  });

  it('reports the CK_RV of a failed unwrap', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const altered = provider.wrapDataKey(crypto.randomBytes(32));
    altered[20] ^= 0xff;

    // SoftHSM 2.6.1 reports the RFC 3394 integrity failure as CKR_GENERAL_ERROR.
    assert.throws(
      () => provider!.unwrapDataKey(altered),
      (error: unknown) => error instanceof HsmError && error.ckr === 'CKR_GENERAL_ERROR',
    );
  });

  it('rejects data keys and wrapped keys of the wrong length', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());

    assert.throws(
      () => provider!.wrapDataKey(Buffer.alloc(16)),
      hsmError('hsm_invalid_input', /32-byte AES-256 key, got 16 bytes/),
    );
    assert.throws(
      () => provider!.unwrapDataKey(Buffer.alloc(39)),
      hsmError('hsm_unwrap_failed', /expected 40 bytes .*got 39 bytes/),
    );
  });

  it('computes a deterministic 32-byte audit HMAC', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const record = Buffer.from('{"action":"login","actor":"admin"}');

    const mac = provider.auditHmac(record);

    assert.equal(mac.length, 32);
    assert.deepEqual(provider.auditHmac(Buffer.from(record)), mac);
    assert.notDeepEqual(provider.auditHmac(Buffer.from('{"action":"login","actor":"admim"}')), mac);
    assert.equal(provider.auditHmac(Buffer.alloc(0)).length, 32);
    assert.notDeepEqual(provider.auditHmac(Buffer.alloc(0)), mac);
  });

  it('keeps the master key value inside the token', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const module = acquireModule(token.hsm, 'test');
    const session = openSession(requireTokenSlot(module, token.hsm.tokenLabel));
    try {
      login(session, fs.readFileSync(token.hsm.pinFile, 'utf8'), UserType.USER, 'test PIN');
      const masterKey = findSecretKey(session, masterKeyLabel);
      assert.ok(masterKey);

      assert.throws(
        () => masterKey.getAttribute({ value: null }),
        (error: unknown) => ckrName(error) === 'CKR_ATTRIBUTE_SENSITIVE',
      );
    } finally {
      session.close();
      releaseModule(module, 'test');
    }
  });

  it('signs digests that openssl verifies', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const dir = fs.mkdtempSync(path.join(token.dir, 'openssl-'));
    const data = Buffer.from('audit export 2026-12-04, 1234 records\n');
    fs.writeFileSync(path.join(dir, 'data.bin'), data);
    fs.writeFileSync(path.join(dir, 'pub.pem'), provider.signingPublicKeyPem());
    fs.writeFileSync(
      path.join(dir, 'sig.der'),
      provider.signDigest(crypto.createHash('sha256').update(data).digest()),
    );

    const verify = (file: string) =>
      execFileSync(
        'openssl',
        [
          'dgst',
          '-sha256',
          '-verify',
          path.join(dir, 'pub.pem'),
          '-signature',
          path.join(dir, 'sig.der'),
          path.join(dir, file),
        ],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );

    assert.equal(verify('data.bin').trim(), 'Verified OK');

    fs.writeFileSync(
      path.join(dir, 'other.bin'),
      Buffer.from('audit export 2026-12-04, 1235 records\n'),
    );
    assert.throws(
      () => verify('other.bin'),
      (error: unknown) =>
        /Verification failure/.test(String((error as { stdout?: string }).stdout)),
    );
  });

  it('exports a P-256 public signing key', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());

    const key = crypto.createPublicKey(provider.signingPublicKeyPem());

    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(
      provider.signingKeyUri,
      'pkcs11:token=provider-test;object=appliance-signing;type=private-key',
    );
  });

  it('rejects a digest that is not 32 bytes', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());

    assert.throws(
      () => provider!.signDigest(Buffer.from('not a digest')),
      hsmError('hsm_invalid_input', /32-byte SHA-256 digest, got 12 bytes/),
    );
  });

  it('reports health until closed', () => {
    const opened = openKeyProvider({ hsm: token.hsm }, quiet());
    assert.deepEqual(opened.health(), { ok: true, tokenLabel: 'provider-test' });

    opened.close();

    assert.equal(opened.health().ok, false);
    assert.throws(
      () => opened.wrapDataKey(crypto.randomBytes(32)),
      hsmError('hsm_closed', /openKeyProvider/),
    );
  });

  it('shares the module between two providers', () => {
    const first = openKeyProvider({ hsm: token.hsm }, quiet());
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const wrapped = first.wrapDataKey(Buffer.alloc(32, 1));

    first.close();

    assert.equal(provider.health().ok, true);
    assert.deepEqual(provider.unwrapDataKey(wrapped), Buffer.alloc(32, 1));
  });

  it('rejects a second configuration while the module is open', () => {
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    const other = createTestTokenDir('other-token');
    try {
      assert.throws(
        () => ensureToken({ hsm: other.hsm }, quiet()),
        hsmError('hsm_in_use', /key provider .*Close those first/),
      );
    } finally {
      other.remove();
    }
  });

  it('rejects a wrong PIN with what to do', () => {
    const pinFile = path.join(token.dir, 'wrong-pin');
    fs.writeFileSync(pinFile, 'wrong-pin-0000', { mode: 0o600 });

    assert.throws(
      () => openKeyProvider({ hsm: { ...token.hsm, pinFile } }, quiet()),
      hsmError(
        'hsm_pin_incorrect',
        new RegExp(
          `user PIN from ${pinFile} \\(CKR_PIN_INCORRECT\\)\\. Put the PIN of this token into that file`,
        ),
      ),
    );
    provider = openKeyProvider({ hsm: token.hsm }, quiet());
    assert.equal(provider.health().ok, true);
  });

  it('names a missing PIN file', () => {
    const pinFile = path.join(token.dir, 'no-such-pin');

    assert.throws(
      () => openKeyProvider({ hsm: { ...token.hsm, pinFile } }, quiet()),
      hsmError('hsm_pin_missing', /no-such-pin cannot be read \(ENOENT\)/),
    );
  });

  it('names a missing token label', () => {
    assert.throws(
      () => openKeyProvider({ hsm: { ...token.hsm, tokenLabel: 'no-such-token' } }, quiet()),
      hsmError(
        'hsm_token_missing',
        /No token is labelled "no-such-token" \(tokens present: "provider-test"\)\. Run scripts\/init-token\.ts or set HSM_TOKEN_LABEL/,
      ),
    );
  });

  it('names a missing module path', () => {
    assert.throws(
      () =>
        openKeyProvider(
          { hsm: { ...token.hsm, modulePath: '/usr/lib/no-such-pkcs11.so' } },
          quiet(),
        ),
      hsmError(
        'hsm_unavailable',
        /Loading the PKCS#11 module \/usr\/lib\/no-such-pkcs11\.so failed.*PKCS11_MODULE/,
      ),
    );
  });

  it('names a missing SoftHSM configuration', () => {
    const softhsmConf = path.join(token.dir, 'no-such.conf');

    assert.throws(
      () => openKeyProvider({ hsm: { ...token.hsm, softhsmConf } }, quiet()),
      hsmError('hsm_unavailable', /no-such\.conf cannot be read \(ENOENT\)/),
    );
  });
});
