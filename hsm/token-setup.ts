import fs from 'node:fs';
import path from 'node:path';

import { TokenFlag, UserType, type Module, type Slot } from 'graphene-pk11';
import type { Logger } from 'pino';

import type { ApplianceConfig } from '../appliance/platform/config';
import { logger as applianceLogger } from '../appliance/platform/logger';
import {
  auditKeyLabel,
  findSecretKey,
  generateAuditKey,
  generateMasterKey,
  keyIdHex,
  masterKeyLabel,
  requireAuditKey,
  requireMasterKey,
} from './appliance-keys';
import { HsmError, toHsmError } from './errors';
import { checkMechanisms, tokenSetupMechanisms } from './mechanisms';
import { generatePin, readPinFile, securePinFile, writePinFile } from './pin-files';
import {
  acquireModule,
  findFreeSlot,
  findTokenSlot,
  isSoftHsm,
  login,
  logoutQuietly,
  openSession,
  releaseModule,
  requireTokenSlot,
} from './pkcs11-module';
import { formatPkcs11Uri } from './pkcs11-uri';
import {
  generateSigningKeyPair,
  hasSigningKey,
  requireSigningKeyPair,
  signingKeyLabel,
} from './signing-key';

/** The configuration values token set-up reads. */
export type TokenSetupConfig = Pick<ApplianceConfig, 'hsm'>;

/** Options of ensureToken(). */
export interface TokenSetupOptions {
  /** Logger for what set-up creates; defaults to the appliance logger. */
  logger?: Logger;
}

/** What ensureToken() found and changed, for the caller to log. Contains no secrets. */
export interface TokenSetupResult {
  tokenLabel: string;
  tokenSerial: string;
  /** Whether this run wrote the SoftHSM configuration file. */
  softhsmConfigCreated: boolean;
  /** Paths of the PIN files written by this run. */
  pinFilesCreated: string[];
  /** Whether the mode of a PIN file or its directory was tightened to 0600/0700. */
  pinFileModesFixed: boolean;
  /** Whether this run initialised the token (C_InitToken) or set its user PIN (C_InitPIN). */
  createdToken: boolean;
  /** CKA_LABEL of each key this run generated on the token. */
  createdKeys: string[];
  /** CKA_ID of the master key, hex. */
  masterKeyId: string;
  /** CKA_ID of the audit key, hex. */
  auditKeyId: string;
  /** CKA_ID of both halves of the ECDSA P-256 signing key pair, hex. */
  signingKeyId: string;
  masterKeyUri: string;
  auditKeyUri: string;
  /** PKCS#11 URI of the private signing key. */
  signingKeyUri: string;
}

/** Length of generated PINs, unless the token allows less: 32 base64url characters carry 192 bits. */
const preferredPinLength = 32;

/** Length of CK_TOKEN_INFO.label and of the label argument of C_InitToken, blank padded. */
const tokenLabelBytes = 32;

/**
 * Sets up the appliance token and returns what it did. Each step is skipped
 * when its result exists, so a second run changes nothing:
 *
 * 1. writes a SoftHSM configuration with its own token directory at the
 *    configured path when the module is SoftHSM and the file is missing;
 * 2. generates the user and SO PINs into their files (mode 0600, directory
 *    0700) before the token uses them, so a crash never leaves a token whose
 *    PINs are lost;
 * 3. initialises a free token with the configured label and sets its user PIN;
 * 4. generates the master key, the audit key and the signing key pair on
 *    the token.
 *
 * NOTE: two processes running this at the same time can both initialise a
 * token or generate a key. The key provider then rejects the duplicate label.
 */
export function ensureToken(
  config: TokenSetupConfig,
  options: TokenSetupOptions = {},
): TokenSetupResult {
  const hsm = config.hsm;
  const logger = (options.logger ?? applianceLogger).child({
    component: 'hsm',
    tokenLabel: hsm.tokenLabel,
  });
  checkTokenLabel(hsm.tokenLabel);

  const softhsmConfigCreated = ensureSoftHsmConfig(hsm);
  if (softhsmConfigCreated)
    logger.info({ softhsmConf: hsm.softhsmConf }, 'SoftHSM configuration created');
  const pinFilesCreated: string[] = [];

  const module = acquireModule(hsm, 'token set-up');
  try {
    let slot = findTokenSlot(module, hsm.tokenLabel);
    let createdToken = false;
    if (slot === null) {
      slot = initializeToken(module, hsm, pinFilesCreated);
      createdToken = true;
    } else if ((slot.getToken().flags & TokenFlag.USER_PIN_INITIALIZED) === 0) {
      // An earlier run stopped between C_InitToken and C_InitPIN.
      initializeUserPin(slot, hsm, pinFilesCreated);
      createdToken = true;
    }
    if (pinFilesCreated.length > 0)
      logger.info({ pinFiles: pinFilesCreated }, 'HSM PIN files created');
    if (createdToken)
      logger.info({ tokenSerial: slot.getToken().serialNumber }, 'HSM token initialised');

    const pinFileModesFixed = securePinFiles(hsm);
    if (pinFileModesFixed)
      logger.warn({ pinFiles: [hsm.pinFile, hsm.soPinFile] }, 'HSM PIN file modes tightened');

    const keys = ensureKeys(slot, hsm);
    if (keys.createdKeys.length > 0) logger.info({ keys: keys.createdKeys }, 'HSM keys generated');

    return {
      tokenLabel: hsm.tokenLabel,
      tokenSerial: slot.getToken().serialNumber,
      softhsmConfigCreated,
      pinFilesCreated,
      pinFileModesFixed,
      createdToken,
      ...keys,
      masterKeyUri: formatPkcs11Uri({
        token: hsm.tokenLabel,
        object: masterKeyLabel,
        type: 'secret-key',
      }),
      auditKeyUri: formatPkcs11Uri({
        token: hsm.tokenLabel,
        object: auditKeyLabel,
        type: 'secret-key',
      }),
      signingKeyUri: formatPkcs11Uri({
        token: hsm.tokenLabel,
        object: signingKeyLabel,
        type: 'private-key',
      }),
    };
  } finally {
    releaseModule(module, 'token set-up');
  }
}

/** A CK_TOKEN_INFO label is 32 bytes, blank padded, so a longer or blank label cannot match. */
function checkTokenLabel(label: string): void {
  const length = Buffer.byteLength(label, 'utf8');
  if (label.trim() !== label || length === 0 || length > tokenLabelBytes) {
    throw new HsmError(
      'hsm_invalid_input',
      `The token label ${JSON.stringify(label)} is invalid: it must be 1 to ${tokenLabelBytes} bytes of UTF-8 without leading or trailing blanks. Fix HSM_TOKEN_LABEL.`,
    );
  }
}

/**
 * Writes a SoftHSM configuration at `hsm.softhsmConf`, with a token
 * directory `tokens` beside it, when the module is SoftHSM and the file is
 * missing. Returns whether it wrote the file. A path under /etc is left
 * alone (acquireModule() reports it missing), because system configuration
 * belongs to the package manager and the operator.
 */
function ensureSoftHsmConfig(hsm: TokenSetupConfig['hsm']): boolean {
  const configPath = path.resolve(hsm.softhsmConf);
  if (!isSoftHsm(hsm.modulePath)) return false;
  if (fs.existsSync(configPath)) return false;
  if (configPath === '/etc' || configPath.startsWith('/etc/')) return false;

  const softhsmDir = path.dirname(configPath);
  const tokenDir = path.join(softhsmDir, 'tokens');
  if (!fs.existsSync(softhsmDir)) fs.mkdirSync(softhsmDir, { recursive: true, mode: 0o700 });
  fs.mkdirSync(tokenDir, { recursive: true, mode: 0o700 });

  const text = [
    '# SoftHSM 2 configuration of this appliance, written by its token set-up (hsm/token-setup.ts).',
    `directories.tokendir = ${tokenDir}`,
    'objectstore.backend = file',
    'log.level = ERROR',
    'slots.removable = false',
    '',
  ].join('\n');
  fs.writeFileSync(configPath, text, { flag: 'wx', mode: 0o600 });
  return true;
}
/**
 * Returns the PIN stored in `file`, or generates one and writes it there
 * when the file does not exist yet. Records a written path in `created`.
 */
function loadOrCreatePin(file: string, who: string, length: number, created: string[]): string {
  if (fs.existsSync(file)) return readPinFile(file, who);

  const pin = generatePin(length);
  writePinFile(file, pin);
  created.push(file);
  return pin;
}

/** Picks the PIN length: the preferred length, moved into the range the token accepts. */
function pinLength(slot: Slot): number {
  const token = slot.getToken();
  return Math.min(Math.max(preferredPinLength, token.minPinLen), token.maxPinLen);
}

/**
 * Initialises a free token with the configured label and sets its user
 * PIN. Returns the token's slot, found again by label because SoftHSM
 * moves an initialised token to another slot.
 */
function initializeToken(module: Module, hsm: TokenSetupConfig['hsm'], created: string[]): Slot {
  const freeSlot = findFreeSlot(module);
  if (freeSlot === null) {
    throw new HsmError(
      'hsm_token_missing',
      `No token is labelled "${hsm.tokenLabel}" and no free slot is left to initialise one. Free a slot or set HSM_TOKEN_LABEL to an existing token.`,
    );
  }

  const length = pinLength(freeSlot);
  const soPin = loadOrCreatePin(hsm.soPinFile, 'SO PIN', length, created);
  loadOrCreatePin(hsm.pinFile, 'user PIN', length, created);

  // C_InitToken reads exactly 32 bytes of label, so it is padded here.
  // graphene-pk11 2.3.6 Slot.initToken() is not used: it passes the label
  // unpadded and then fails on the undefined that pkcs11js 2.1 returns.
  const paddedLabel =
    hsm.tokenLabel + ' '.repeat(tokenLabelBytes - Buffer.byteLength(hsm.tokenLabel, 'utf8'));
  try {
    freeSlot.lib.C_InitToken(freeSlot.handle, soPin, paddedLabel);
  } catch (error) {
    throw toHsmError(error, `Initialising the token "${hsm.tokenLabel}" (C_InitToken)`);
  }

  const slot = requireTokenSlot(module, hsm.tokenLabel);
  initializeUserPin(slot, hsm, created);
  return slot;
}

/** Logs in as security officer and sets the user PIN (C_InitPIN) from the PIN file. */
function initializeUserPin(slot: Slot, hsm: TokenSetupConfig['hsm'], created: string[]): void {
  const length = pinLength(slot);
  const soPin = readPinFile(hsm.soPinFile, 'SO PIN');
  const userPin = loadOrCreatePin(hsm.pinFile, 'user PIN', length, created);

  const session = openSession(slot);
  try {
    login(session, soPin, UserType.SO, `SO PIN from ${hsm.soPinFile}`);
    try {
      session.initPin(userPin);
    } catch (error) {
      throw toHsmError(error, `Setting the user PIN of the token "${hsm.tokenLabel}" (C_InitPIN)`);
    } finally {
      logoutQuietly(session);
    }
  } finally {
    session.close();
  }
}

/** Tightens the modes of the PIN files that exist. Returns whether a mode changed. */
function securePinFiles(hsm: TokenSetupConfig['hsm']): boolean {
  let changed = false;
  for (const file of [hsm.pinFile, hsm.soPinFile]) {
    if (fs.existsSync(file) && securePinFile(file)) changed = true;
  }
  return changed;
}

/**
 * Logs in as user and generates whichever key is missing, then checks all
 * of them. It logs out only when it logged in itself, because a logout
 * would end the login of a key provider open in this process.
 */
function ensureKeys(
  slot: Slot,
  hsm: TokenSetupConfig['hsm'],
): Pick<TokenSetupResult, 'createdKeys' | 'masterKeyId' | 'auditKeyId' | 'signingKeyId'> {
  const userPin = readPinFile(hsm.pinFile, 'user PIN');
  checkMechanisms(slot, tokenSetupMechanisms);

  const session = openSession(slot);
  try {
    const loggedInHere = login(session, userPin, UserType.USER, `user PIN from ${hsm.pinFile}`);
    try {
      const createdKeys: string[] = [];
      if (findSecretKey(session, masterKeyLabel) === null) {
        generateMasterKey(session);
        createdKeys.push(masterKeyLabel);
      }
      if (findSecretKey(session, auditKeyLabel) === null) {
        generateAuditKey(session);
        createdKeys.push(auditKeyLabel);
      }
      if (!hasSigningKey(session)) {
        generateSigningKeyPair(session);
        createdKeys.push(signingKeyLabel);
      }

      return {
        createdKeys,
        masterKeyId: keyIdHex(requireMasterKey(session, hsm.tokenLabel)),
        auditKeyId: keyIdHex(requireAuditKey(session, hsm.tokenLabel)),
        signingKeyId: requireSigningKeyPair(session, hsm.tokenLabel).id,
      };
    } finally {
      if (loggedInHere) logoutQuietly(session);
    }
  } finally {
    session.close();
  }
}
