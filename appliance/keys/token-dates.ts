import { ObjectClass, type Session } from 'graphene-pk11';

import { findKeyObject } from '../../hsm/appliance-keys';
import { ckrName } from '../../hsm/errors';
import {
  acquireModule,
  openSession,
  releaseModule,
  requireTokenSlot,
  type HsmConfig,
} from '../../hsm/pkcs11-module';
import { logger } from '../platform/logger';

/** CKA_START_DATE (PKCS#11 2.40, section 4.7): a CK_DATE, eight ASCII digits YYYYMMDD. */
const ckaStartDate = 0x110;

const moduleHolder = 'key inventory';

/** A token key whose CKA_START_DATE is read. */
export interface TokenKeyRef {
  label: string;
  objectClass: 'secret-key' | 'private-key';
}

/**
 * Reads CKA_START_DATE of each key and returns it as `YYYY-MM-DD` by label.
 * Keys without a date (an empty attribute, as ensureToken() leaves it) and
 * keys whose date cannot be read (logged as a warning) are missing from the
 * result, because the date is informational and must not stop the start. The key provider must be open, because this
 * session relies on its login to see private objects.
 *
 * The raw CK_DATE is parsed here because graphene-pk11 2.3.6 decodes it
 * into a local-time Date with the month off by one.
 */
export function readStartDates(hsm: HsmConfig, keys: TokenKeyRef[]): Map<string, string> {
  const module = acquireModule(hsm, moduleHolder);
  let session: Session | undefined;
  try {
    session = openSession(requireTokenSlot(module, hsm.tokenLabel));

    const dates = new Map<string, string>();
    for (const key of keys) {
      const objectClass =
        key.objectClass === 'secret-key' ? ObjectClass.SECRET_KEY : ObjectClass.PRIVATE_KEY;
      const object = findKeyObject(session, objectClass, key.label);
      if (!object) continue;

      try {
        const date = parseCkDate(readStartDate(session, object.handle));
        if (date) dates.set(key.label, date);
      } catch (error) {
        logger.warn(
          { label: key.label, ckr: ckrName(error), err: error },
          'reading CKA_START_DATE failed; the key inventory uses the appliance record instead',
        );
      }
    }
    return dates;
  } finally {
    // Closing this session keeps the login, which the key provider's session still holds.
    session?.close();
    releaseModule(module, moduleHolder);
  }
}

/**
 * Returns the raw CKA_START_DATE, or undefined when it is empty. pkcs11js
 * 2.x throws a TypeError ("has wrong length. Should be 8, but is 0") for an
 * empty CK_DATE, which is how SoftHSM 2.6.1 stores an unset date.
 *
 * NOTE: with SoftHSM 2.6.1 and pkcs11js 2.x, reading a date that is set
 * fails with CKR_GENERAL_ERROR (seen on a session key given a date with
 * C_SetAttributeValue), so a set date is never returned on that stack.
 */
function readStartDate(session: Session, handle: Buffer): unknown {
  try {
    const [attribute] = session.lib.C_GetAttributeValue(session.handle, handle, [
      { type: ckaStartDate },
    ]);
    return attribute?.value;
  } catch (error) {
    if (error instanceof TypeError && /but is 0$/.test(error.message)) return undefined;
    throw error;
  }
}

/** Converts a CK_DATE (YYYYMMDD, ASCII) into `YYYY-MM-DD`, or undefined when empty or malformed. */
export function parseCkDate(value: unknown): string | undefined {
  if (!Buffer.isBuffer(value) || value.length !== 8) return undefined;

  const text = value.toString('ascii');
  if (!/^\d{8}$/.test(text) || text === '00000000') return undefined;
  return `${text.slice(0, 4)}-${text.slice(4, 6)}-${text.slice(6, 8)}`;
}
