import crypto from 'node:crypto';

import {
  KeyType,
  MechanismEnum,
  ObjectClass,
  UserType,
  type ITemplate,
  type Module,
  type SecretKey,
  type Session,
} from 'graphene-pk11';
import type { Logger } from 'pino';

import type { ApplianceConfig } from '../appliance/platform/config';
import { logger as applianceLogger } from '../appliance/platform/logger';
import {
  auditKeyLabel,
  findSecretKey,
  generateMasterKeyVersion,
  masterKeyLabel,
  requireAuditKey,
  requireMasterKey,
  requireMasterKeyVersion,
} from './appliance-keys';
import { HsmError, ckrName, toHsmError } from './errors';
import { clearOpenSslErrorQueue } from './openssl-error-queue';
import type { KeyProvider, WrappedTenantKey } from './key-provider';
import { checkMechanisms, keyProviderMechanisms } from './mechanisms';
import { readPinFile } from './pin-files';
import {
  acquireModule,
  login,
  openSession,
  releaseModule,
  requireTokenSlot,
  type HsmConfig,
} from './pkcs11-module';
import { formatPkcs11Uri, parsePkcs11Uri } from './pkcs11-uri';
import {
  ecdsaSignatureToDer,
  requireSigningKeyPair,
  signingKeyLabel,
  type SigningKeyPair,
} from './signing-key';

/** Length of a SHA-256 digest, the input of signDigest(). */
const sha256Length = 32;

/** Length of a data key: AES-256. */
const dataKeyLength = 32;

/**
 * Length of a wrapped data key. IMPORTANT: stored wrapped keys are the bare
 * RFC 3394 output (8-byte integrity block plus the 32-byte key, encrypted),
 * with nothing naming the master key; this layout must never change.
 */
const wrappedKeyLength = dataKeyLength + 8;

/** Name of the key provider among the holders of the PKCS#11 module, for hsm_in_use messages. */
const moduleHolder = 'key provider';

/** CKS_RW_USER_FUNCTIONS: a read/write session of a logged-in user (PKCS#11 2.40, CK_STATE). */
const sessionStateRwUser = 3;

/**
 * Return values of C_UnwrapKey that mean the wrapped bytes fail the RFC 3394
 * integrity check. SoftHSM 2.6.1 reports that failure as CKR_GENERAL_ERROR,
 * which other modules use for device faults too.
 */
const unwrapIntegrityFailures = new Set([
  'CKR_GENERAL_ERROR',
  'CKR_WRAPPED_KEY_INVALID',
  'CKR_WRAPPED_KEY_LEN_RANGE',
  'CKR_ENCRYPTED_DATA_INVALID',
]);

/**
 * Attributes of the temporary session object that contains a data key while
 * the token wraps it or after the token unwraps it. It can do nothing but
 * be wrapped or read, and it is destroyed before the call returns.
 */
export const dataKeyTemplate: ITemplate = {
  class: ObjectClass.SECRET_KEY,
  keyType: KeyType.AES,
  token: false,
  private: true,
  sensitive: false,
  extractable: true,
  encrypt: false,
  decrypt: false,
  sign: false,
  verify: false,
  wrap: false,
  unwrap: false,
  derive: false,
};

/**
 * Attributes of the temporary session object that contains a data key during
 * a rewrap. Unlike dataKeyTemplate it is sensitive, so C_GetAttributeValue
 * cannot read its value, yet extractable, so C_WrapKey can wrap it again.
 */
export const rewrapTemplate: ITemplate = { ...dataKeyTemplate, sensitive: true };

/**
 * Attributes of the session object that contains an unwrapped tenant key: it
 * wraps and unwraps data keys, and its value can be neither read nor
 * wrapped out of the token.
 */
const tenantKeyTemplate: ITemplate = {
  ...dataKeyTemplate,
  sensitive: true,
  extractable: false,
  wrap: true,
  unwrap: true,
};

/**
 * Maximum number of unwrapped tenant keys kept as session objects. Each
 * object lengthens SoftHSM's object scans (C_FindObjects), so beyond this
 * the least recently used one is destroyed. A miss costs one C_UnwrapKey.
 */
const maxTenantKeyObjects = 64;

/** CKA_LABEL of master key versions 2 and later. */
const masterVersionLabel = new RegExp(`^${masterKeyLabel}-v[0-9]+$`);

/** Options of openKeyProvider(). */
export interface KeyProviderOptions {
  /** Logger for open, close and clean-up failures; defaults to the appliance logger. */
  logger?: Logger;
}

/**
 * KeyProvider backed by a PKCS#11 token. It keeps one session and one login
 * for the life of the process, because a logout on any session ends the
 * login of all of them, and it keeps the key handles because each lookup
 * scans every object on the token. Calls are synchronous, as graphene-pk11
 * calls PKCS#11 on the calling thread.
 */
export class Pkcs11KeyProvider implements KeyProvider {
  readonly masterKeyUri: string;
  readonly auditKeyUri: string;
  readonly signingKeyUri: string;

  private closed = false;

  /** Handles of master key versions 2 and later by URI, looked up on first use. */
  private readonly masterKeyVersions = new Map<string, SecretKey>();

  /**
   * Unwrapped tenant keys by a digest of their master key URI and wrapped
   * bytes, in least recently used order; see tenantKeyObject().
   */
  private readonly tenantKeys = new Map<string, SecretKey>();

  private constructor(
    private readonly module: Module,
    private readonly session: Session,
    private readonly masterKey: SecretKey,
    private readonly auditKey: SecretKey,
    private readonly signingKeys: SigningKeyPair,
    private readonly tokenLabel: string,
    private readonly logger: Logger,
  ) {
    this.masterKeyUri = formatPkcs11Uri({
      token: tokenLabel,
      object: masterKeyLabel,
      type: 'secret-key',
    });
    this.auditKeyUri = formatPkcs11Uri({
      token: tokenLabel,
      object: auditKeyLabel,
      type: 'secret-key',
    });
    this.signingKeyUri = formatPkcs11Uri({
      token: tokenLabel,
      object: signingKeyLabel,
      type: 'private-key',
    });
  }

  /**
   * Loads the module, finds the token by label, checks its mechanisms, logs
   * in with the PIN from `hsm.pinFile` and looks up the keys. On failure
   * everything opened so far is closed again before the HsmError is thrown.
   */
  static open(hsm: HsmConfig, options: KeyProviderOptions = {}): Pkcs11KeyProvider {
    const logger = (options.logger ?? applianceLogger).child({
      component: 'hsm',
      tokenLabel: hsm.tokenLabel,
    });
    const pin = readPinFile(hsm.pinFile, 'user PIN');

    const module = acquireModule(hsm, moduleHolder);
    let session: Session | null = null;
    try {
      const slot = requireTokenSlot(module, hsm.tokenLabel);
      checkMechanisms(slot, keyProviderMechanisms);

      session = openSession(slot);
      login(session, pin, UserType.USER, `user PIN from ${hsm.pinFile}`);

      const masterKey = requireMasterKey(session, hsm.tokenLabel);
      const auditKey = requireAuditKey(session, hsm.tokenLabel);
      const signingKeys = requireSigningKeyPair(session, hsm.tokenLabel);

      const provider = new Pkcs11KeyProvider(
        module,
        session,
        masterKey,
        auditKey,
        signingKeys,
        hsm.tokenLabel,
        logger,
      );
      logger.info(
        { modulePath: hsm.modulePath, tokenSerial: slot.getToken().serialNumber },
        'HSM key provider opened',
      );
      return provider;
    } catch (error) {
      if (session !== null) closeSessionQuietly(session);
      releaseModule(module, moduleHolder);
      throw error;
    }
  }

  wrapDataKey(dataKey: Buffer, masterKeyUri?: string): Buffer {
    this.assertOpen();
    return this.wrapWith(this.resolveMasterKey(masterKeyUri), dataKey, 'the master key');
  }

  unwrapDataKey(wrapped: Buffer, masterKeyUri?: string): Buffer {
    this.assertOpen();
    return this.unwrapWith(this.resolveMasterKey(masterKeyUri), wrapped);
  }

  wrapDataKeyUnder(tenantKey: WrappedTenantKey, dataKey: Buffer): Buffer {
    this.assertOpen();
    return this.wrapWith(this.tenantKeyObject(tenantKey), dataKey, 'the tenant key');
  }

  unwrapDataKeyUnder(tenantKey: WrappedTenantKey, wrapped: Buffer): Buffer {
    this.assertOpen();
    return this.unwrapWith(this.tenantKeyObject(tenantKey), wrapped);
  }

  rewrapDataKeyBetween(wrapped: Buffer, from: WrappedTenantKey, to: WrappedTenantKey): Buffer {
    this.assertOpen();
    const fromKey = this.tenantKeyObject(from);
    return this.rewrapWith(
      wrapped,
      fromKey,
      this.tenantKeyObject(to),
      'the new tenant key version',
    );
  }

  rewrapDataKey(wrapped: Buffer, fromMasterKeyUri: string, toMasterKeyUri: string): Buffer {
    this.assertOpen();
    const fromKey = this.resolveMasterKey(fromMasterKeyUri);
    const toKey = this.resolveMasterKey(toMasterKeyUri);
    return this.rewrapWith(wrapped, fromKey, toKey, 'the new master key version');
  }

  createMasterKeyVersion(version: number): string {
    this.assertOpen();
    const { key, label, id } = generateMasterKeyVersion(this.session, version);
    const uri = formatPkcs11Uri({ token: this.tokenLabel, object: label, id, type: 'secret-key' });
    this.masterKeyVersions.set(uri, key);
    this.logger.info({ masterKeyUri: uri, version }, 'master key version generated');
    return uri;
  }

  destroyMasterKeyVersion(masterKeyUri: string): void {
    this.assertOpen();
    if (masterKeyUri === this.masterKeyUri) {
      throw new HsmError(
        'hsm_invalid_input',
        'Destroying master key version 1 was refused: it is the key that token set-up made.',
      );
    }
    const key = this.resolveMasterKey(masterKeyUri);
    try {
      this.session.destroy(key);
    } catch (error) {
      throw toHsmError(error, `Destroying the master key version ${masterKeyUri}`);
    } finally {
      this.masterKeyVersions.delete(masterKeyUri);
    }
    this.logger.warn({ masterKeyUri }, 'master key version destroyed');
  }

  auditHmac(data: Buffer): Buffer {
    this.assertOpen();
    if (!Buffer.isBuffer(data)) {
      throw new HsmError(
        'hsm_invalid_input',
        `Computing the audit HMAC failed: expected a Buffer, got ${typeof data}.`,
      );
    }

    let sign;
    try {
      sign = this.session.createSign(MechanismEnum.SHA256_HMAC, this.auditKey);
    } catch (error) {
      throw toHsmError(error, 'Starting the audit HMAC (C_SignInit)');
    }

    try {
      // pkcs11js passes an empty buffer as a null pointer, which C_Sign
      // rejects with CKR_ARGUMENTS_BAD, so empty input goes straight to
      // C_SignFinal, which is the HMAC of zero bytes.
      return Buffer.from(data.length === 0 ? sign.final() : sign.once(data));
    } catch (error) {
      // A C_Sign that fails with CKR_ARGUMENTS_BAD leaves the operation
      // active, and every later C_SignInit on the session would fail with
      // CKR_OPERATION_ACTIVE. C_SignFinal ends it.
      try {
        sign.final();
      } catch {
        // The failed call already ended the operation.
      }
      throw toHsmError(error, 'Computing the audit HMAC (C_Sign)');
    }
  }

  signDigest(digest: Buffer): Buffer {
    this.assertOpen();
    if (!Buffer.isBuffer(digest) || digest.length !== sha256Length) {
      throw new HsmError(
        'hsm_invalid_input',
        `Signing the digest failed: expected a ${sha256Length}-byte SHA-256 digest, got ${describeLength(digest)}.`,
      );
    }

    let sign;
    try {
      sign = this.session.createSign(MechanismEnum.ECDSA, this.signingKeys.privateKey);
    } catch (error) {
      throw toHsmError(error, 'Starting the ECDSA signature (C_SignInit)');
    }

    let raw: Buffer;
    try {
      raw = Buffer.from(sign.once(digest));
    } catch (error) {
      throw toHsmError(error, 'Signing the digest with CKM_ECDSA (C_Sign)');
    }
    return ecdsaSignatureToDer(raw);
  }

  signingPublicKeyPem(): string {
    this.assertOpen();
    return this.signingKeys.publicKeyPem;
  }

  health(activeMasterKeyUri?: string): { ok: boolean; tokenLabel: string; detail?: string } {
    if (this.closed)
      return { ok: false, tokenLabel: this.tokenLabel, detail: 'The key provider is closed.' };

    try {
      const info = this.session.lib.C_GetSessionInfo(this.session.handle);
      if (info.state !== sessionStateRwUser) {
        return {
          ok: false,
          tokenLabel: this.tokenLabel,
          detail: `The session is not logged in (session state ${info.state}); reopen the key provider.`,
        };
      }
    } catch (error) {
      return {
        ok: false,
        tokenLabel: this.tokenLabel,
        detail: toHsmError(error, 'Reading the session state').message,
      };
    }

    const missing = this.findMissingMasterKey(activeMasterKeyUri ?? this.masterKeyUri);
    return missing === undefined
      ? { ok: true, tokenLabel: this.tokenLabel }
      : { ok: false, tokenLabel: this.tokenLabel, detail: missing };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;

    try {
      closeSessionQuietly(this.session);
    } finally {
      releaseModule(this.module, moduleHolder);
      this.logger.info('HSM key provider closed');
    }
  }

  /**
   * Returns the master key version named by `uri`: version 1 when `uri` is
   * undefined or this provider's masterKeyUri, else a `vault-master-vN`
   * object with the CKA_ID in the URI. Any other URI is rejected, so a
   * stored URI cannot point the unwrap at an unrelated key.
   */
  private resolveMasterKey(uri: string | undefined): SecretKey {
    if (uri === undefined || uri === this.masterKeyUri) return this.masterKey;

    const cached = this.masterKeyVersions.get(uri);
    if (cached) return cached;

    const locator = parsePkcs11Uri(uri);
    if (
      locator === undefined ||
      locator.token !== this.tokenLabel ||
      locator.type !== 'secret-key' ||
      locator.id === undefined ||
      !masterVersionLabel.test(locator.object)
    ) {
      throw new HsmError(
        'hsm_key_missing',
        `The master key URI "${uri}" does not name a master key version on the token "${this.tokenLabel}". Restore the key records from a backup of the same appliance.`,
      );
    }

    const key = requireMasterKeyVersion(this.session, this.tokenLabel, locator.object, locator.id);
    this.masterKeyVersions.set(uri, key);
    return key;
  }

  /**
   * Searches the token for the master key version at `uri` without the
   * cached handle, and returns why it is unusable or undefined when it is
   * there. The search costs one scan of the token's objects.
   */
  private findMissingMasterKey(uri: string): string | undefined {
    try {
      if (uri === this.masterKeyUri) {
        if (findSecretKey(this.session, masterKeyLabel) === null) {
          return `The active master key "${masterKeyLabel}" is no longer on the token "${this.tokenLabel}", so no data key can be wrapped or unwrapped. Restore the token from its backup or run \`appliancectl recovery restore\` onto a new token.`;
        }
        return undefined;
      }
      this.masterKeyVersions.delete(uri);
      this.resolveMasterKey(uri);
      return undefined;
    } catch (error) {
      const hsmError = toHsmError(error, `Searching the token for the active master key ${uri}`);
      return hsmError.code === 'hsm_key_missing'
        ? `The active master key version ${uri} is no longer on the token "${this.tokenLabel}": ${hsmError.message}`
        : hsmError.message;
    }
  }

  /** Unwraps `wrapped` under `masterKey` into a session object made from `template`. */
  private unwrapToObject(wrapped: Buffer, masterKey: SecretKey, template: ITemplate): SecretKey {
    if (!Buffer.isBuffer(wrapped) || wrapped.length !== wrappedKeyLength) {
      throw new HsmError(
        'hsm_unwrap_failed',
        `Unwrapping the data key failed: expected ${wrappedKeyLength} bytes of RFC 3394 output, got ${describeLength(wrapped)}. The stored value is truncated or not a wrapped data key.`,
      );
    }

    try {
      return this.session
        .unwrapKey(MechanismEnum.AES_KEY_WRAP, masterKey, wrapped, template)
        .toType<SecretKey>();
    } catch (error) {
      throw unwrapError(error);
    }
  }

  /** Imports `dataKey` as a session object and wraps it under `wrappingKey` (C_WrapKey). */
  private wrapWith(wrappingKey: SecretKey, dataKey: Buffer, wrappingName: string): Buffer {
    if (!Buffer.isBuffer(dataKey) || dataKey.length !== dataKeyLength) {
      throw new HsmError(
        'hsm_invalid_input',
        `Wrapping the data key failed: expected a ${dataKeyLength}-byte AES-256 key, got ${describeLength(dataKey)}.`,
      );
    }

    let dataKeyObject: SecretKey;
    try {
      dataKeyObject = this.session
        .create({ ...dataKeyTemplate, value: dataKey })
        .toType<SecretKey>();
    } catch (error) {
      throw toHsmError(error, 'Importing the data key as a session object');
    }

    try {
      return this.session.wrapKey(MechanismEnum.AES_KEY_WRAP, wrappingKey, dataKeyObject);
    } catch (error) {
      const action = `Wrapping the data key under ${wrappingName} (C_WrapKey)`;
      throw masterKeyGoneError(error, action) ?? toHsmError(error, action);
    } finally {
      this.destroyQuietly(dataKeyObject, 'wrap');
    }
  }

  /**
   * Unwraps a data key under `fromKey` into a sensitive session object and
   * wraps it under `toKey`, so its value never leaves the token.
   */
  private rewrapWith(
    wrapped: Buffer,
    fromKey: SecretKey,
    toKey: SecretKey,
    toName: string,
  ): Buffer {
    const dataKeyObject = this.unwrapToObject(wrapped, fromKey, rewrapTemplate);
    try {
      return this.session.wrapKey(MechanismEnum.AES_KEY_WRAP, toKey, dataKeyObject);
    } catch (error) {
      const action = `Wrapping the data key under ${toName} (C_WrapKey)`;
      throw masterKeyGoneError(error, action) ?? toHsmError(error, action);
    } finally {
      this.destroyQuietly(dataKeyObject, 'rewrap');
    }
  }

  /** Unwraps a stored data key under `wrappingKey` and returns a copy of its value. */
  private unwrapWith(wrappingKey: SecretKey, wrapped: Buffer): Buffer {
    const dataKeyObject = this.unwrapToObject(wrapped, wrappingKey, dataKeyTemplate);

    try {
      const value = dataKeyObject.getAttribute({ value: null }).value;
      if (!Buffer.isBuffer(value) || value.length !== dataKeyLength) {
        throw new HsmError(
          'hsm_unwrap_failed',
          `Unwrapping the data key produced ${describeLength(value)} instead of ${dataKeyLength}. The stored value is not a wrapped AES-256 data key.`,
        );
      }
      const copy = Buffer.from(value);
      value.fill(0);
      return copy;
    } catch (error) {
      throw toHsmError(error, 'Reading the unwrapped data key (C_GetAttributeValue)');
    } finally {
      this.destroyQuietly(dataKeyObject, 'unwrap');
    }
  }

  /**
   * Returns the session object of a tenant key, unwrapping it under its
   * master key version on first use. The cache key covers the wrapped bytes,
   * so a rewrapped or edited row never reuses another row's object. A tenant
   * key that fails the RFC 3394 check throws hsm_unwrap_failed.
   */
  private tenantKeyObject(tenantKey: WrappedTenantKey): SecretKey {
    const id = crypto
      .createHash('sha256')
      .update(tenantKey.masterKeyUri)
      .update('\0')
      .update(tenantKey.wrapped)
      .digest('base64');
    const cached = this.tenantKeys.get(id);
    if (cached) {
      this.tenantKeys.delete(id);
      this.tenantKeys.set(id, cached);
      return cached;
    }

    const masterKey = this.resolveMasterKey(tenantKey.masterKeyUri);
    let object: SecretKey;
    try {
      object = this.unwrapToObject(tenantKey.wrapped, masterKey, tenantKeyTemplate);
    } catch (error) {
      if (!(error instanceof HsmError) || error.code !== 'hsm_unwrap_failed') throw error;
      throw new HsmError(
        'hsm_unwrap_failed',
        `Unwrapping the tenant key under ${tenantKey.masterKeyUri} failed: the stored tenant key was altered or wrapped under another master key. Restore project_key_versions from a backup.`,
        { ckr: error.ckr, cause: error },
      );
    }

    this.tenantKeys.set(id, object);
    if (this.tenantKeys.size > maxTenantKeyObjects) {
      const [oldestId, oldest] = this.tenantKeys.entries().next().value as [string, SecretKey];
      this.tenantKeys.delete(oldestId);
      this.destroyQuietly(oldest, 'tenant key');
    }
    return object;
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new HsmError(
        'hsm_closed',
        'The HSM key provider is closed. Open a new one with openKeyProvider().',
      );
    }
  }

  /**
   * Destroys a temporary data-key object. A failure is logged, not thrown,
   * so it cannot hide the result or the error of the wrap or unwrap; the
   * object still disappears when the session closes.
   */
  private destroyQuietly(
    object: SecretKey,
    operation: 'wrap' | 'unwrap' | 'rewrap' | 'tenant key',
  ): void {
    try {
      this.session.destroy(object);
    } catch (error) {
      this.logger.error(
        { operation, ckr: ckrName(error), err: error },
        'Destroying the temporary data-key session object failed',
      );
    }
  }
}

/** Opens the PKCS#11 key provider with the HSM part of the appliance configuration; see Pkcs11KeyProvider.open(). */
export function openKeyProvider(
  config: Pick<ApplianceConfig, 'hsm'>,
  options: KeyProviderOptions = {},
): KeyProvider {
  return Pkcs11KeyProvider.open(config.hsm, options);
}

function describeLength(value: unknown): string {
  return Buffer.isBuffer(value) ? `${value.length} bytes` : typeof value;
}

/**
 * Return values that mean the master key handle no longer names an object,
 * because the key was deleted from the token after the provider looked it up.
 */
const masterKeyGone = new Set([
  'CKR_KEY_HANDLE_INVALID',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_UNWRAPPING_KEY_HANDLE_INVALID',
  'CKR_WRAPPING_KEY_HANDLE_INVALID',
]);

/**
 * Maps a failed C_WrapKey or C_UnwrapKey whose master key was deleted to
 * hsm_key_missing, so the vault refuses with 503 instead of reading the
 * failure as an altered record; returns undefined for any other failure.
 */
function masterKeyGoneError(error: unknown, action: string): HsmError | undefined {
  const ckr = ckrName(error);
  if (ckr === undefined || !masterKeyGone.has(ckr)) return undefined;

  clearOpenSslErrorQueue();
  return new HsmError(
    'hsm_key_missing',
    `${action} failed with ${ckr}: the master key is no longer on the token. Nothing was changed. Restore the token from its backup, then restart the appliance.`,
    { ckr, cause: error },
  );
}

function unwrapError(error: unknown): HsmError {
  const missingKey = masterKeyGoneError(error, 'Unwrapping the data key (C_UnwrapKey)');
  if (missingKey) return missingKey;

  clearOpenSslErrorQueue();
  const ckr = ckrName(error);
  if (ckr !== undefined && unwrapIntegrityFailures.has(ckr)) {
    return new HsmError(
      'hsm_unwrap_failed',
      `Unwrapping the data key failed with ${ckr}: the wrapped bytes fail the integrity check, so they were altered or wrapped under another master key. Restore the stored value from a backup.`,
      { ckr, cause: error },
    );
  }
  return toHsmError(error, 'Unwrapping the data key (C_UnwrapKey)', 'hsm_unwrap_failed');
}

/**
 * Closes the session without C_Logout, because the login belongs to every
 * session of this process on the token and other holders may still use it.
 * Closing the last session of the token, or C_Finalize, ends the login.
 */
function closeSessionQuietly(session: Session): void {
  try {
    session.close();
  } catch {
    // C_Finalize in releaseModule() closes any session left.
  }
}
