import assert from 'node:assert/strict';

import { MechanismEnum, MechanismFlag } from 'graphene-pk11';

import { HsmError } from './errors';
import {
  checkMechanismSupport,
  checkMechanisms,
  keyProviderMechanisms,
  tokenSetupMechanisms,
} from './mechanisms';
import { acquireModule, releaseModule, requireTokenSlot } from './pkcs11-module';
import { createCapturingLogger, createTestTokenDir } from './test-support';
import { ensureToken } from './token-setup';

/** The mechanisms of the key provider with the flags SoftHSM 2.6.1 reports for them. */
function completeList(): Map<number, number> {
  return new Map([
    [
      MechanismEnum.AES_KEY_WRAP,
      MechanismFlag.WRAP | MechanismFlag.UNWRAP | MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
    ],
    [MechanismEnum.SHA256_HMAC, MechanismFlag.SIGN | MechanismFlag.VERIFY],
    [MechanismEnum.ECDSA, MechanismFlag.SIGN | MechanismFlag.VERIFY],
  ]);
}

describe('checkMechanismSupport', () => {
  it('accepts a list with every mechanism', () => {
    assert.doesNotThrow(() => checkMechanismSupport(completeList(), keyProviderMechanisms));
  });

  it('names a mechanism missing from the list', () => {
    const list = completeList();
    list.delete(MechanismEnum.ECDSA);

    assert.throws(
      () => checkMechanismSupport(list, keyProviderMechanisms),
      (error: unknown) =>
        error instanceof HsmError &&
        error.code === 'hsm_mechanism_missing' &&
        error.message.startsWith(
          'The token does not support CKM_ECDSA, which the appliance needs for SIGN.',
        ),
    );
  });

  it('names a use the flags do not allow', () => {
    const list = completeList();
    list.set(
      MechanismEnum.AES_KEY_WRAP,
      MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT | MechanismFlag.WRAP,
    );

    assert.throws(
      () => checkMechanismSupport(list, keyProviderMechanisms),
      (error: unknown) =>
        error instanceof HsmError &&
        error.code === 'hsm_mechanism_missing' &&
        error.message.startsWith('The token supports CKM_AES_KEY_WRAP but not for UNWRAP'),
    );
  });
});

describe('checkMechanisms @integration', () => {
  it('accepts the SoftHSM token', () => {
    const token = createTestTokenDir('mechanism-test');
    try {
      ensureToken({ hsm: token.hsm }, { logger: createCapturingLogger().logger });
      const module = acquireModule(token.hsm, 'test');
      try {
        const slot = requireTokenSlot(module, token.hsm.tokenLabel);

        assert.doesNotThrow(() =>
          checkMechanisms(slot, [...keyProviderMechanisms, ...tokenSetupMechanisms]),
        );
        assert.throws(
          () => checkMechanisms(slot, [{ name: 'ECDSA_SHA256', uses: ['SIGN'] }]),
          (error: unknown) => error instanceof HsmError && error.code === 'hsm_mechanism_missing',
        );
      } finally {
        releaseModule(module, 'test');
      }
    } finally {
      token.remove();
    }
  });
});
