import fs from 'node:fs';
import path from 'node:path';

import { TokenFlag, UserType, type Module, type Slot } from 'graphene-pk11';

import type { ApplianceConfig } from '../appliance/platform/config';
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

/** The configuration values token set-up reads. */
export type TokenSetupConfig = Pick<ApplianceConfig, 'dataDir' | 'hsm'>;

/** What ensureToken() found and changed, for the caller to log. Contains no secrets. */
export interface TokenSetupResult {
  tokenLabel: string;
  tokenSerial: string;
  /** Whether a SoftHSM configuration file was written under the data directory. */
  softhsmConfigCreated: boolean;
  /** Paths of the PIN files written by this run. */
  pinFilesCreated: string[];
  /** Whether the mode of a PIN file or its directory was tightened to 0600/0700. */
  pinFileModesFixed: boolean;
  /** Whether the token was initialised (C_InitToken, C_InitPIN) by this run. */
  tokenInitialized: boolean;
  masterKeyCreated: boolean;
  auditKeyCreated: boolean;
  /** CKA_ID of the master key, hex. */
  masterKeyId: string;
  /** CKA_ID of the audit key, hex. */
  auditKeyId: string;
  masterKeyUri: string;
  auditKeyUri: string;
}

/** Length of generated PINs, unless the token allows less: 32 base64url characters carry 192 bits. */
const preferredPinLength = 32;

/** Returns the SoftHSM configuration path that token set-up may create: `<dataDir>/softhsm/softhsm2.conf`. */
export function defaultSoftHsmConfigPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'softhsm', 'softhsm2.conf');
}

/**
 * Sets up the appliance token and returns what it did. Each step is skipped
 * when its result exists, so a second run changes nothing:
 *
 * 1. writes a SoftHSM configuration with its own token directory, but only
 *    at the default path under the data directory and only for SoftHSM;
 * 2. generates the user and SO PINs into their files (mode 0600, directory
 *    0700) before the token uses them, so a crash never leaves a token whose
 *    PINs are lost;
 * 3. initialises a free token with the configured label and sets its user PIN;
 * 4. generates the master key and the audit key on the token.
 *
 * NOTE: two processes running this at the same time can both initialise a
 * token or generate a key. The key provider then rejects the duplicate label.
 */
export function ensureToken(config: TokenSetupConfig): TokenSetupResult {
  const hsm = config.hsm;
  checkTokenLabel(hsm.tokenLabel);

  const softhsmConfigCreated = ensureSoftHsmConfig(config);
  const pinFilesCreated: string[] = [];

  const module = acquireModule(hsm, 'token set-up');
  try {
    let slot = findTokenSlot(module, hsm.tokenLabel);
    let tokenInitialized = false;
    if (slot === null) {
      slot = initializeToken(module, config, pinFilesCreated);
      tokenInitialized = true;
    } else if ((slot.getToken().flags & TokenFlag.USER_PIN_INITIALIZED) === 0) {
      // An earlier run stopped between C_InitToken and C_InitPIN.
      initializeUserPin(slot, config, pinFilesCreated);
      tokenInitialized = true;
    }

    const pinFileModesFixed = securePinFiles(hsm);
    const keys = ensureKeys(slot, hsm);

    return {
      tokenLabel: hsm.tokenLabel,
      tokenSerial: slot.getToken().serialNumber,
      softhsmConfigCreated,
      pinFilesCreated,
      pinFileModesFixed,
      tokenInitialized,
      ...keys,
      masterKeyUri: formatPkcs11Uri({ token: hsm.tokenLabel, object: masterKeyLabel, type: 'secret-key' }),
      auditKeyUri: formatPkcs11Uri({ token: hsm.tokenLabel, object: auditKeyLabel, type: 'secret-key' }),
    };
  } finally {
    releaseModule(module);
  }
}

/** A CK_TOKEN_INFO label is 32 bytes, blank padded, so a longer or blank label cannot match. */
function checkTokenLabel(label: string): void {
  const length = Buffer.byteLength(label, 'utf8');
  if (label.trim() !== label || length === 0 || length > 32) {
    throw new HsmError(
      'hsm_invalid_input',
      `The token label ${JSON.stringify(label)} is invalid: it must be 1 to 32 bytes of UTF-8 without leading or trailing blanks. Fix HSM_TOKEN_LABEL.`,
    );
  }
}

/**
 * Writes a SoftHSM configuration and creates its token directory when the
 * configured path is the default one under the data directory and the file
 * is missing. Returns whether it wrote the file. Any other missing path is
 * left for acquireModule() to report, so nothing outside the data
 * directory (such as /etc) is ever written.
 */
function ensureSoftHsmConfig(config: TokenSetupConfig): boolean {
  const configPath = path.resolve(config.hsm.softhsmConf);
  if (!isSoftHsm(config.hsm.modulePath)) return false;
  if (configPath !== defaultSoftHsmConfigPath(config.dataDir)) return false;
  if (fs.existsSync(configPath)) return false;

  const softhsmDir = path.dirname(configPath);
  const tokenDir = path.join(softhsmDir, 'tokens');
  fs.mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  fs.chmodSync(softhsmDir, 0o700);

  const text = [
    '# SoftHSM 2 configuration of this appliance, written by scripts/init-token.ts.',
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
function initializeToken(module: Module, config: TokenSetupConfig, created: string[]): Slot {
  const hsm = config.hsm;
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

  try {
    freeSlot.initToken(soPin, hsm.tokenLabel);
  } catch (error) {
    throw toHsmError(error, `Initialising the token "${hsm.tokenLabel}" (C_InitToken)`);
  }

  const slot = requireTokenSlot(module, hsm.tokenLabel);
  initializeUserPin(slot, config, created);
  return slot;
}

/** Logs in as security officer and sets the user PIN (C_InitPIN) from the PIN file. */
function initializeUserPin(slot: Slot, config: TokenSetupConfig, created: string[]): void {
  const hsm = config.hsm;
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

/** Logs in as user and generates whichever of the two keys is missing, then checks both. */
function ensureKeys(
  slot: Slot,
  hsm: TokenSetupConfig['hsm'],
): Pick<TokenSetupResult, 'masterKeyCreated' | 'auditKeyCreated' | 'masterKeyId' | 'auditKeyId'> {
  const userPin = readPinFile(hsm.pinFile, 'user PIN');
  checkMechanisms(slot, tokenSetupMechanisms);

  const session = openSession(slot);
  try {
    login(session, userPin, UserType.USER, `user PIN from ${hsm.pinFile}`);
    try {
      const masterKeyCreated = findSecretKey(session, masterKeyLabel) === null;
      if (masterKeyCreated) generateMasterKey(session);

      const auditKeyCreated = findSecretKey(session, auditKeyLabel) === null;
      if (auditKeyCreated) generateAuditKey(session);

      return {
        masterKeyCreated,
        auditKeyCreated,
        masterKeyId: keyIdHex(requireMasterKey(session, hsm.tokenLabel)),
        auditKeyId: keyIdHex(requireAuditKey(session, hsm.tokenLabel)),
      };
    } finally {
      logoutQuietly(session);
    }
  } finally {
    session.close();
  }
}
