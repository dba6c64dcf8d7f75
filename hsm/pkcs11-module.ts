import fs from 'node:fs';
import path from 'node:path';

import { Module, SessionFlag, TokenFlag, UserType, type Session, type Slot } from 'graphene-pk11';

import type { ApplianceConfig } from '../appliance/platform/config';
import { HsmError, ckrName, toHsmError } from './errors';

/** The HSM part of the appliance configuration. */
export type HsmConfig = ApplianceConfig['hsm'];

/**
 * The loaded module, the configuration it was initialised with and the
 * holders using it. PKCS#11 keeps one library state per process: C_Finalize
 * ends every session, and SoftHSM reads SOFTHSM2_CONF only in C_Initialize.
 * So holders with the same module and configuration share one initialised
 * module, and a holder with another configuration must wait until the last
 * holder released it.
 */
let current: { module: Module; modulePath: string; softhsmConf: string; holders: string[] } | null =
  null;

/**
 * Loads and initialises the PKCS#11 module for one holder ("key provider",
 * "token set-up"), with SOFTHSM2_CONF set to `hsm.softhsmConf`, or shares
 * the module already loaded with the same path and configuration. Throws
 * hsm_in_use while holders of another configuration have it. Each call
 * needs one releaseModule().
 */
export function acquireModule(hsm: HsmConfig, holder: string): Module {
  const softhsmConf = path.resolve(hsm.softhsmConf);
  if (current !== null) {
    if (current.modulePath === hsm.modulePath && current.softhsmConf === softhsmConf) {
      current.holders.push(holder);
      return current.module;
    }
    throw new HsmError(
      'hsm_in_use',
      `Cannot open the PKCS#11 module ${hsm.modulePath} with SOFTHSM2_CONF=${softhsmConf} for the ${holder}: the ${current.holders.join(', ')} of this process hold ${current.modulePath} with SOFTHSM2_CONF=${current.softhsmConf}. Close those first, or use the same configuration.`,
    );
  }

  checkSoftHsmConfig(hsm);
  process.env.SOFTHSM2_CONF = softhsmConf;

  let module: Module;
  try {
    module = Module.load(hsm.modulePath);
  } catch (error) {
    throw new HsmError(
      'hsm_unavailable',
      `Loading the PKCS#11 module ${hsm.modulePath} failed: ${(error as Error).message}. Install the module or fix PKCS11_MODULE.`,
      { cause: error },
    );
  }

  try {
    module.initialize();
  } catch (error) {
    closeQuietly(module);
    throw new HsmError(
      'hsm_unavailable',
      `C_Initialize of ${hsm.modulePath} failed with ${ckrName(error) ?? (error as Error).message}. Check the module configuration (SOFTHSM2_CONF=${softhsmConf}).`,
      { ckr: ckrName(error), cause: error },
    );
  }

  current = { module, modulePath: hsm.modulePath, softhsmConf, holders: [holder] };
  return module;
}

/**
 * Releases one holder's use of a module from acquireModule(). The last
 * release finalises and unloads it, which also ends every session and login.
 */
export function releaseModule(module: Module, holder: string): void {
  if (current?.module !== module) return;

  const index = current.holders.indexOf(holder);
  if (index === -1) return;
  current.holders.splice(index, 1);
  if (current.holders.length > 0) return;

  current = null;
  try {
    module.finalize();
  } catch (error) {
    // The module was already finalised under this holder (the HSM went away
    // or another caller ended it), so there is nothing left to end.
    if (ckrName(error) !== 'CKR_CRYPTOKI_NOT_INITIALIZED') throw error;
  } finally {
    closeQuietly(module);
  }
}

function closeQuietly(module: Module): void {
  try {
    module.close();
  } catch {
    // Unloading after a failed C_Initialize may fail too; nothing is left to clean up.
  }
}

/** Returns whether the module path names SoftHSM, whose configuration comes from SOFTHSM2_CONF. */
export function isSoftHsm(modulePath: string): boolean {
  return path.basename(modulePath).toLowerCase().includes('softhsm');
}

/**
 * Rejects a SoftHSM configuration that C_Initialize would reject with a
 * bare CKR_GENERAL_ERROR: a missing file, or a tokendir that does not exist.
 * Other modules ignore SOFTHSM2_CONF, so their configuration is not checked.
 */
function checkSoftHsmConfig(hsm: HsmConfig): void {
  if (!isSoftHsm(hsm.modulePath)) return;

  let text: string;
  try {
    text = fs.readFileSync(hsm.softhsmConf, 'utf8');
  } catch (error) {
    throw new HsmError(
      'hsm_unavailable',
      `The SoftHSM configuration ${hsm.softhsmConf} cannot be read (${(error as NodeJS.ErrnoException).code}). Run scripts/init-token.ts, or point SOFTHSM2_CONF at an existing file.`,
      { cause: error },
    );
  }

  const tokenDir = /^\s*directories\.tokendir\s*=\s*(.+?)\s*$/m.exec(text)?.[1];
  if (tokenDir === undefined) {
    throw new HsmError(
      'hsm_unavailable',
      `The SoftHSM configuration ${hsm.softhsmConf} sets no directories.tokendir. Add it.`,
    );
  }
  if (!fs.existsSync(tokenDir)) {
    throw new HsmError(
      'hsm_unavailable',
      `The SoftHSM token directory ${tokenDir} (directories.tokendir in ${hsm.softhsmConf}) does not exist. Create it or fix the path.`,
    );
  }
}

/** Lists the slots that hold a token. */
function tokenSlots(module: Module): Slot[] {
  const slots = module.getSlots(true);
  const result: Slot[] = [];
  for (let i = 0; i < slots.length; i++) result.push(slots.items(i));
  return result;
}

/**
 * Returns the slot of the initialised token labelled `label`, or null when
 * there is none. Tokens are found by label because SoftHSM moves a token to
 * a slot derived from its serial number when it is initialised.
 */
export function findTokenSlot(module: Module, label: string): Slot | null {
  const matches = tokenSlots(module).filter((slot) => {
    const token = slot.getToken();
    return (token.flags & TokenFlag.TOKEN_INITIALIZED) !== 0 && token.label === label;
  });

  if (matches.length > 1) {
    throw new HsmError(
      'hsm_token_missing',
      `${matches.length} tokens are labelled "${label}", so the appliance token is ambiguous. Relabel or delete the extra tokens.`,
    );
  }
  return matches[0] ?? null;
}

/** Returns the slot of the token labelled `label`, or throws hsm_token_missing naming the labels present. */
export function requireTokenSlot(module: Module, label: string): Slot {
  const slot = findTokenSlot(module, label);
  if (slot !== null) return slot;

  const labels = tokenSlots(module)
    .map((candidate) => candidate.getToken())
    .filter((token) => (token.flags & TokenFlag.TOKEN_INITIALIZED) !== 0)
    .map((token) => JSON.stringify(token.label));
  throw new HsmError(
    'hsm_token_missing',
    `No token is labelled "${label}" (tokens present: ${labels.length > 0 ? labels.join(', ') : 'none'}). Run scripts/init-token.ts or set HSM_TOKEN_LABEL.`,
  );
}

/** Returns a slot whose token is not initialised yet, or null. */
export function findFreeSlot(module: Module): Slot | null {
  return (
    tokenSlots(module).find(
      (slot) => (slot.getToken().flags & TokenFlag.TOKEN_INITIALIZED) === 0,
    ) ?? null
  );
}

/** Opens a read/write session on the slot. */
export function openSession(slot: Slot): Session {
  try {
    return slot.open(SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION);
  } catch (error) {
    throw toHsmError(error, 'Opening a session on the token', 'hsm_unavailable');
  }
}

/**
 * Logs in to the token and returns true, or returns false when this process
 * is already logged in as that user through another session, because a
 * PKCS#11 login holds for every session of the process on the token. `who`
 * names the PIN for messages ("user PIN from /path"); the PIN itself never
 * reaches a message.
 *
 * NOTE: when another holder in this process is already logged in, the token
 * does not check `pin` again, so a wrong PIN file goes unnoticed until the
 * last holder closes.
 */
export function login(session: Session, pin: string, userType: UserType, who: string): boolean {
  try {
    session.login(pin, userType);
    return true;
  } catch (error) {
    const ckr = ckrName(error);
    if (ckr === 'CKR_USER_ALREADY_LOGGED_IN') return false;
    if (ckr === 'CKR_PIN_INCORRECT') {
      throw new HsmError(
        'hsm_pin_incorrect',
        `The token rejected the ${who} (CKR_PIN_INCORRECT). Put the PIN of this token into that file (restore it from the backup of the PIN files), or point the PIN file setting at the right file. Each failed login counts towards locking the PIN.`,
        { ckr, cause: error },
      );
    }
    if (ckr === 'CKR_PIN_LOCKED') {
      throw new HsmError(
        'hsm_pin_locked',
        `The token locked the ${who} after too many failed logins (CKR_PIN_LOCKED). The security officer must unlock it by setting the user PIN again (C_InitPIN).`,
        { ckr, cause: error },
      );
    }
    if (ckr === 'CKR_USER_ANOTHER_ALREADY_LOGGED_IN') {
      throw new HsmError(
        'hsm_in_use',
        `Logging in with the ${who} failed with ${ckr}: this process is logged in to the token as another user. Close the other key provider or token set-up first.`,
        { ckr, cause: error },
      );
    }
    throw toHsmError(error, `Logging in with the ${who}`, 'hsm_unavailable');
  }
}

/** Logs out, ignoring a session that is already logged out. */
export function logoutQuietly(session: Session): void {
  try {
    session.logout();
  } catch (error) {
    if (ckrName(error) !== 'CKR_USER_NOT_LOGGED_IN') throw error;
  }
}
