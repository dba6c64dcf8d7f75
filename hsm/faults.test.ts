import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';

import type { Module, Session } from 'graphene-pk11';

import { gcmDecrypt, gcmEncrypt, generateGcmKey } from './aes-gcm';
import { masterKeyLabel } from './appliance-keys';
import { HsmError } from './errors';
import { Pkcs11KeyProvider } from './pkcs11-key-provider';
import {
  createCapturingLogger,
  createTestTokenDir,
  runPkcs11Tool,
  type TestTokenDir,
} from './test-support';
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

/** The private parts of the provider that a fault test reaches into to break the token underneath it. */
interface ProviderInternals {
  module: Module;
  session: Session;
}

describe('HSM faults @integration', () => {
  let token: TestTokenDir;
  let provider: Pkcs11KeyProvider | undefined;
  const quiet = () => ({ logger: createCapturingLogger().logger });

  beforeEach(() => {
    token = createTestTokenDir('faults-test');
    ensureToken({ hsm: token.hsm }, quiet());
  });

  afterEach(() => {
    provider?.close();
    provider = undefined;
    token.remove();
  });

  it('refuses to open with a wrong PIN file and names the file', () => {
    const pin = fs.readFileSync(token.hsm.pinFile, 'utf8').trim();
    fs.writeFileSync(token.hsm.pinFile, `${pin.slice(0, -1)}${pin.endsWith('x') ? 'y' : 'x'}\n`);

    assert.throws(
      () => Pkcs11KeyProvider.open(token.hsm, quiet()),
      hsmError(
        'hsm_pin_incorrect',
        new RegExp(
          `CKR_PIN_INCORRECT.*${escape(token.hsm.pinFile)}|${escape(token.hsm.pinFile)}.*CKR_PIN_INCORRECT`,
        ),
      ),
    );

    // The refused open released the module, so the right PIN opens it again.
    fs.writeFileSync(token.hsm.pinFile, `${pin}\n`);
    provider = Pkcs11KeyProvider.open(token.hsm, quiet());
    assert.equal(provider.health().ok, true);
  });

  it('refuses to open when no token carries the label', () => {
    assert.throws(
      () => Pkcs11KeyProvider.open({ ...token.hsm, tokenLabel: 'no-such-token' }, quiet()),
      hsmError('hsm_token_missing', /No token is labelled "no-such-token".*"faults-test"/),
    );
  });

  it('refuses wraps and unwraps with hsm_key_missing once the master key is deleted', () => {
    provider = Pkcs11KeyProvider.open(token.hsm, quiet());
    const dataKey = crypto.randomBytes(32);
    const wrapped = provider.wrapDataKey(dataKey);
    const stored = Buffer.from(wrapped);

    deleteMasterKey(token);

    assert.throws(
      () => provider!.unwrapDataKey(wrapped),
      hsmError(
        'hsm_key_missing',
        /CKR_UNWRAPPING_KEY_HANDLE_INVALID.*master key is no longer on the token/,
      ),
    );
    assert.throws(
      () => provider!.wrapDataKey(dataKey),
      hsmError('hsm_key_missing', /CKR_WRAPPING_KEY_HANDLE_INVALID/),
    );
    assert.deepEqual(wrapped, stored, 'the failed unwrap changed the wrapped bytes');

    const health = provider.health();
    assert.equal(health.ok, false);
    assert.match(health.detail ?? '', /"vault-master" is no longer on the token "faults-test"/);
  });

  it('reports hsm_unavailable and closes cleanly after the module is finalised under it', () => {
    provider = Pkcs11KeyProvider.open(token.hsm, quiet());
    const wrapped = provider.wrapDataKey(crypto.randomBytes(32));

    internals(provider).module.finalize();

    assert.throws(
      () => provider!.unwrapDataKey(wrapped),
      hsmError('hsm_unavailable', /CKR_CRYPTOKI_NOT_INITIALIZED/),
    );
    assert.throws(
      () => provider!.auditHmac(Buffer.from('record')),
      hsmError('hsm_unavailable', /CKR_CRYPTOKI_NOT_INITIALIZED/),
    );
    const health = provider.health();
    assert.equal(health.ok, false);
    assert.match(health.detail ?? '', /CKR_CRYPTOKI_NOT_INITIALIZED/);

    provider.close();
    provider = undefined;

    // The module can be loaded again, so a restart recovers.
    provider = Pkcs11KeyProvider.open(token.hsm, quiet());
    assert.equal(provider.health().ok, true);
  });

  it('maps a CKM_AES_GCM tag mismatch (SoftHSM CKR_GENERAL_ERROR) to hsm_decrypt_failed', () => {
    provider = Pkcs11KeyProvider.open(token.hsm, quiet());
    const { session } = internals(provider);
    const key = generateGcmKey(session);
    const input = { key, iv: crypto.randomBytes(12), aad: Buffer.from('prompt-1/body') };
    const plaintext = crypto.randomBytes(2048);
    const sealed = gcmEncrypt(session, input, plaintext);
    assert.deepEqual(gcmDecrypt(session, input, sealed), plaintext);

    const altered = Buffer.from(sealed);
    altered[100] ^= 0x01;
    assert.throws(
      () => gcmDecrypt(session, input, altered),
      (error: unknown) =>
        hsmError(
          'hsm_decrypt_failed',
          /CKR_GENERAL_ERROR: the authentication tag does not match/,
        )(error) && (error as HsmError).ckr === 'CKR_GENERAL_ERROR',
    );
    assert.throws(
      () => gcmDecrypt(session, { ...input, aad: Buffer.from('prompt-2/body') }, sealed),
      hsmError('hsm_decrypt_failed', /tag does not match/),
    );

    // The failed decrypt left no operation active: the session still works.
    assert.deepEqual(gcmDecrypt(session, input, sealed), plaintext);
    session.destroy(key);
  });
});

function deleteMasterKey(token: TestTokenDir): void {
  const pin = fs.readFileSync(token.hsm.pinFile, 'utf8').trim();
  runPkcs11Tool(token.hsm, [
    '--login',
    '--pin',
    pin,
    '--delete-object',
    '--type',
    'secrkey',
    '--label',
    masterKeyLabel,
  ]);
}

function internals(provider: Pkcs11KeyProvider): ProviderInternals {
  return provider as unknown as ProviderInternals;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
