import crypto from 'node:crypto';

import {
  KeyGenMechanism,
  MechanismEnum,
  ObjectClass,
  UserType,
  type Module,
  type SecretKey,
  type Session,
} from 'graphene-pk11';
import type { Logger } from 'pino';

import { logger as applianceLogger } from '../appliance/platform/logger';
import { masterKeyTemplate } from './appliance-keys';
import { ckrName, toHsmError } from './errors';
import { dataKeyTemplate, rewrapTemplate } from './pkcs11-key-provider';
import { clearOpenSslErrorQueue } from './openssl-error-queue';
import { readPinFile } from './pin-files';
import {
  acquireModule,
  findFreeSlot,
  login,
  logoutQuietly,
  openSession,
  releaseModule,
  requireTokenSlot,
  type HsmConfig,
} from './pkcs11-module';
import { formatPkcs11Uri, parsePkcs11Uri } from './pkcs11-uri';

/** Length of a data key (AES-256) and of its RFC 3394 wrapping (plus the 8-byte integrity block). */
const dataKeyLength = 32;
const wrappedKeyLength = dataKeyLength + 8;

/** Length of CK_TOKEN_INFO.label, blank padded. */
const tokenLabelBytes = 32;

/** Prefix of the CKA_LABEL of a tenant master key; the project id follows. */
export const tenantKeyLabelPrefix = 'tenant-master-';

/**
 * CKA_LABEL of version `version` of the tenant master key of `projectId`.
 * Version 1 keeps the label that project creation gave it.
 */
export function tenantKeyVersionLabel(projectId: string, version: number): string {
  const base = `${tenantKeyLabelPrefix}${projectId}`;
  return version === 1 ? base : `${base}-v${version}`;
}

/** Name of the tenant key ring among the holders of the PKCS#11 module, for hsm_in_use messages. */
const moduleHolder = 'tenant key ring';

/**
 * A tenant master key cannot be used: the appliance disconnected from the
 * customer token (revoke), the token or key is gone (destroyed), or the
 * customer PIN was rejected. Callers fail closed on it.
 */
export class TenantKeyUnavailableError extends Error {
  override readonly name = 'TenantKeyUnavailableError';

  constructor(
    readonly keyUri: string,
    readonly reason: 'disconnected' | 'key_missing' | 'token_missing' | 'login_failed',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A logged-in session on one customer token. */
interface Connection {
  session: Session;
  pinFile: string;
}

/**
 * Tenant master keys that live on customer tokens of the same PKCS#11 module
 * as the appliance token. It keeps one session and login per customer
 * token, looked up by token label. Every wrap and unwrap finds the key on
 * the token again, so a key that the customer deleted stops working at once.
 */
export class TenantKeyRing {
  private readonly module: Module;
  private readonly connections = new Map<string, Connection>();
  private readonly logger: Logger;
  private closed = false;

  constructor(
    private readonly hsm: HsmConfig,
    logger: Logger = applianceLogger,
  ) {
    this.logger = logger.child({ component: 'hsm-tenant-keys' });
    this.module = acquireModule(hsm, moduleHolder);
  }

  /**
   * Logs in to the customer token `tokenLabel` with the PIN in `pinFile`,
   * generates the tenant master key of `projectId` there and returns its
   * PKCS#11 URI. The connection stays open for wraps and unwraps.
   */
  createKey(tokenLabel: string, pinFile: string, projectId: string): string {
    const session = this.connectSession(tokenLabel, pinFile);
    const label = `${tenantKeyLabelPrefix}${projectId}`;
    const id = crypto.randomBytes(16);
    // Same attributes as the appliance master key: wrap and unwrap only, never extractable.
    try {
      session.generateKey(KeyGenMechanism.AES, masterKeyTemplate(id, label));
    } catch (error) {
      throw toHsmError(error, `Generating the tenant master key "${label}" on "${tokenLabel}"`);
    }

    const uri = formatPkcs11Uri({ token: tokenLabel, object: label, id, type: 'secret-key' });
    this.logger.info({ keyUri: uri }, 'tenant master key generated');
    return uri;
  }

  /**
   * Generates version `version` (2 or later) of the tenant master key of
   * `projectId` on the token of `currentKeyUri`, which must be connected, and
   * returns its PKCS#11 URI. Throws TenantKeyUnavailableError when the
   * appliance is disconnected from that token.
   */
  createKeyVersion(currentKeyUri: string, projectId: string, version: number): string {
    if (!Number.isInteger(version) || version < 2) {
      throw new RangeError(
        `A new tenant key version is a whole number of at least 2, got ${version}.`,
      );
    }
    const { session } = this.findKey(currentKeyUri);
    const tokenLabel = this.locate(currentKeyUri).token;
    const label = tenantKeyVersionLabel(projectId, version);
    const id = crypto.randomBytes(16);
    try {
      session.generateKey(KeyGenMechanism.AES, masterKeyTemplate(id, label));
    } catch (error) {
      throw this.failure(currentKeyUri, error, `Generating the tenant key version "${label}"`);
    }

    const uri = formatPkcs11Uri({ token: tokenLabel, object: label, id, type: 'secret-key' });
    this.logger.info({ keyUri: uri, version }, 'tenant master key version generated');
    return uri;
  }

  /** Destroys a tenant key version that a failed rotation generated but never recorded. */
  destroyKey(keyUri: string): void {
    const { session, key } = this.findKey(keyUri);
    try {
      session.destroy(key);
    } catch (error) {
      throw this.failure(keyUri, error, 'Destroying the tenant key version');
    }
    this.logger.warn({ keyUri }, 'tenant master key version destroyed');
  }

  /**
   * Unwraps a data key under the tenant key at `fromKeyUri` and wraps it
   * under the one at `toKeyUri`, both on the customer token, so the
   * plaintext key never enters this process. Throws HsmError
   * hsm_unwrap_failed when the wrapped bytes were altered.
   */
  rewrapDataKey(wrapped: Buffer, fromKeyUri: string, toKeyUri: string): Buffer {
    if (wrapped.length !== wrappedKeyLength) {
      throw toHsmError(
        new Error(`expected ${wrappedKeyLength} bytes of RFC 3394 output, got ${wrapped.length}`),
        'Rewrapping the data key',
        'hsm_unwrap_failed',
      );
    }
    const from = this.findKey(fromKeyUri);
    const to = this.findKey(toKeyUri);

    let object: SecretKey;
    try {
      object = from.session
        .unwrapKey(MechanismEnum.AES_KEY_WRAP, from.key, wrapped, rewrapTemplate)
        .toType<SecretKey>();
    } catch (error) {
      clearOpenSslErrorQueue();
      throw toHsmError(
        error,
        'Unwrapping the data key under the old tenant key version (C_UnwrapKey)',
        'hsm_unwrap_failed',
      );
    }
    try {
      return to.session.wrapKey(MechanismEnum.AES_KEY_WRAP, to.key, object);
    } catch (error) {
      throw this.failure(
        toKeyUri,
        error,
        'Wrapping the data key under the new tenant key version (C_WrapKey)',
      );
    } finally {
      destroyQuietly(from.session, object);
    }
  }

  /**
   * Logs in to the token of `keyUri` with the PIN in `pinFile` and checks that
   * the key is still there. Throws TenantKeyUnavailableError otherwise; it
   * never generates a key, so a destroyed key stays destroyed.
   */
  connect(keyUri: string, pinFile: string): void {
    const locator = this.locate(keyUri);
    this.connectSession(locator.token, pinFile);
    this.findKey(keyUri);
  }

  /** Logs out of the token of `keyUri` and closes its session, so later calls fail until connect(). */
  disconnect(keyUri: string): void {
    const locator = this.locate(keyUri);
    const connection = this.connections.get(locator.token);
    if (!connection) return;

    this.connections.delete(locator.token);
    try {
      logoutQuietly(connection.session);
    } catch (error) {
      this.logger.warn({ keyUri, ckr: ckrName(error) }, 'tenant token logout failed');
    }
    try {
      connection.session.close();
    } catch {
      // C_Finalize in close() ends a session left open.
    }
    this.logger.info({ keyUri }, 'tenant token disconnected');
  }

  /** Checks that the key of `keyUri` is usable; throws TenantKeyUnavailableError otherwise. */
  check(keyUri: string): void {
    this.findKey(keyUri);
  }

  /** Returns whether the ring has a logged-in session on the token of `keyUri`. */
  isConnected(keyUri: string): boolean {
    return this.connections.has(this.locate(keyUri).token);
  }

  /** Wraps a 32-byte data key under the tenant master key at `keyUri` (CKM_AES_KEY_WRAP). */
  wrapDataKey(keyUri: string, dataKey: Buffer): Buffer {
    if (dataKey.length !== dataKeyLength) {
      throw new RangeError(`A data key is ${dataKeyLength} bytes, got ${dataKey.length}.`);
    }
    const { session, key } = this.findKey(keyUri);

    let object: SecretKey;
    try {
      object = session.create({ ...dataKeyTemplate, value: dataKey }).toType<SecretKey>();
    } catch (error) {
      throw this.failure(keyUri, error, 'Importing the data key as a session object');
    }
    try {
      return session.wrapKey(MechanismEnum.AES_KEY_WRAP, key, object);
    } catch (error) {
      throw this.failure(keyUri, error, 'Wrapping the data key under the tenant key (C_WrapKey)');
    } finally {
      destroyQuietly(session, object);
    }
  }

  /** Unwraps a data key under the tenant master key at `keyUri`; throws HsmError hsm_unwrap_failed when altered. */
  unwrapDataKey(keyUri: string, wrapped: Buffer): Buffer {
    if (wrapped.length !== wrappedKeyLength) {
      throw toHsmError(
        new Error(`expected ${wrappedKeyLength} bytes of RFC 3394 output, got ${wrapped.length}`),
        'Unwrapping the data key',
        'hsm_unwrap_failed',
      );
    }
    const { session, key } = this.findKey(keyUri);

    let object: SecretKey;
    try {
      object = session
        .unwrapKey(MechanismEnum.AES_KEY_WRAP, key, wrapped, dataKeyTemplate)
        .toType<SecretKey>();
    } catch (error) {
      clearOpenSslErrorQueue();
      throw toHsmError(
        error,
        'Unwrapping the data key under the tenant key (C_UnwrapKey)',
        'hsm_unwrap_failed',
      );
    }
    try {
      const value = object.getAttribute({ value: null }).value as Buffer;
      const copy = Buffer.from(value);
      value.fill(0);
      return copy;
    } finally {
      destroyQuietly(session, object);
    }
  }

  /** Disconnects every customer token and releases the PKCS#11 module. */
  close(): void {
    if (this.closed) return;
    this.closed = true;

    for (const connection of this.connections.values()) {
      try {
        connection.session.close();
      } catch {
        // C_Finalize in releaseModule() ends it.
      }
    }
    this.connections.clear();
    releaseModule(this.module, moduleHolder);
  }

  private connectSession(tokenLabel: string, pinFile: string): Session {
    if (tokenLabel === this.hsm.tokenLabel) {
      throw new RangeError(
        `The customer token must not be the appliance token "${tokenLabel}"; initialise a token of its own.`,
      );
    }
    const existing = this.connections.get(tokenLabel);
    if (existing) return existing.session;

    const uri = formatPkcs11Uri({ token: tokenLabel, object: '', type: 'secret-key' });
    let session: Session;
    try {
      session = openSession(requireTokenSlot(this.module, tokenLabel));
    } catch (error) {
      throw new TenantKeyUnavailableError(
        uri,
        'token_missing',
        `The customer token "${tokenLabel}" cannot be opened: ${(error as Error).message}`,
        { cause: error },
      );
    }

    try {
      const pin = readPinFile(pinFile, `customer PIN of "${tokenLabel}"`);
      login(session, pin, UserType.USER, `customer PIN from ${pinFile}`);
    } catch (error) {
      session.close();
      throw new TenantKeyUnavailableError(
        uri,
        'login_failed',
        `Logging in to the customer token "${tokenLabel}" failed: ${(error as Error).message}`,
        { cause: error },
      );
    }

    this.connections.set(tokenLabel, { session, pinFile });
    this.logger.info({ tokenLabel }, 'tenant token connected');
    return session;
  }

  /** Finds the key of `keyUri` on its connected token, by label and CKA_ID. */
  private findKey(keyUri: string): { session: Session; key: SecretKey } {
    const locator = this.locate(keyUri);
    const connection = this.connections.get(locator.token);
    if (!connection) {
      throw new TenantKeyUnavailableError(
        keyUri,
        'disconnected',
        `The appliance is disconnected from the customer token "${locator.token}" (key revoked). Restore the key with the customer PIN file first.`,
      );
    }

    let found;
    try {
      found = connection.session.find({
        class: ObjectClass.SECRET_KEY,
        label: locator.object,
        id: locator.id,
      });
    } catch (error) {
      throw this.failure(keyUri, error, 'Searching the customer token for the tenant key');
    }
    if (found.length !== 1) {
      throw new TenantKeyUnavailableError(
        keyUri,
        'key_missing',
        `The tenant master key ${keyUri} is not on the customer token (${found.length} matches); it was destroyed or the token was replaced.`,
      );
    }
    return { session: connection.session, key: found.items(0).toType<SecretKey>() };
  }

  private locate(keyUri: string) {
    const locator = parsePkcs11Uri(keyUri);
    if (
      locator === undefined ||
      locator.id === undefined ||
      !locator.object.startsWith(tenantKeyLabelPrefix)
    ) {
      throw new RangeError(`"${keyUri}" is not the PKCS#11 URI of a tenant master key.`);
    }
    return locator;
  }

  /** A PKCS#11 failure whose return value means the key, session or login is gone becomes unavailable. */
  private failure(keyUri: string, error: unknown, action: string): Error {
    const hsmError = toHsmError(error, action);
    if (hsmError.code === 'hsm_unavailable' || ckrName(error)?.includes('HANDLE_INVALID')) {
      return new TenantKeyUnavailableError(keyUri, 'key_missing', hsmError.message, {
        cause: error,
      });
    }
    return hsmError;
  }
}

function destroyQuietly(session: Session, object: SecretKey): void {
  try {
    session.destroy(object);
  } catch {
    // The session object disappears when the session closes.
  }
}

/**
 * Initialises a free slot as a customer token labelled `label` with the SO
 * and user PINs given, the way a customer prepares the token that holds its
 * tenant master key. Throws when no free slot is left.
 */
export function initializeCustomerToken(
  hsm: HsmConfig,
  label: string,
  soPin: string,
  userPin: string,
): void {
  const module = acquireModule(hsm, 'customer token set-up');
  try {
    const free = findFreeSlot(module);
    if (free === null) throw new Error('No free slot is left to initialise a customer token.');

    // C_InitToken reads exactly 32 bytes of label, so it is padded here.
    const padded = label + ' '.repeat(tokenLabelBytes - Buffer.byteLength(label, 'utf8'));
    free.lib.C_InitToken(free.handle, soPin, padded);

    const session = openSession(requireTokenSlot(module, label));
    try {
      login(session, soPin, UserType.SO, 'customer SO PIN');
      session.initPin(userPin);
      logoutQuietly(session);
    } finally {
      session.close();
    }
  } finally {
    releaseModule(module, 'customer token set-up');
  }
}
