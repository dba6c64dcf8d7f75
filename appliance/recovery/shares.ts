import crypto from 'node:crypto';

import { combine, split } from 'shamir-secret-sharing';

import { RecoveryInputError } from './errors';
import { recoveryFingerprint } from './recovery-key';

/**
 * Text form of one share, as custodians keep and type it:
 * `prs1-<key id>-<share>-<check>`, all lowercase hex. The key id is the first
 * 8 hex digits of the recovery key's fingerprint, so a share of another key
 * is named before anything is combined. The check is the first 8 hex digits
 * of SHA-256 over the text before it, so a mistyped character is caught.
 */
const sharePrefix = 'prs1';
const keyIdLength = 8;
const checkLength = 8;
const sharePattern = /^prs1-([0-9a-f]{8})-([0-9a-f]+)-([0-9a-f]{8})$/;

export interface ParsedShare {
  keyId: string;
  bytes: Uint8Array;
}

export function keyIdOf(fingerprint: string): string {
  return fingerprint.slice(0, keyIdLength);
}

/** Splits the key into `count` shares, any `threshold` of which rebuild it. */
export async function splitRecoveryKey(
  keyBytes: Buffer,
  count: number,
  threshold: number,
): Promise<string[]> {
  const keyId = keyIdOf(recoveryFingerprint(keyBytes));
  const shares = await split(new Uint8Array(keyBytes), count, threshold);
  return shares.map((share) => formatShare(keyId, share));
}

export function formatShare(keyId: string, share: Uint8Array): string {
  const body = `${sharePrefix}-${keyId}-${Buffer.from(share).toString('hex')}`;
  return `${body}-${checkOf(body)}`;
}

/** Parses the share at 1-based `position` of the command line. */
export function parseShare(text: string, position: number): ParsedShare {
  const where = `--share number ${position}`;
  const match = sharePattern.exec(text.trim().toLowerCase());
  if (!match) {
    throw new RecoveryInputError(
      `${where} is not a recovery share: expected prs1-<8 hex>-<hex>-<8 hex> as printed by \`appliancectl recovery init\``,
    );
  }
  const [, keyId, hex, check] = match;
  const body = `${sharePrefix}-${keyId}-${hex}`;
  if (checkOf(body) !== check || hex.length % 2 !== 0) {
    throw new RecoveryInputError(
      `${where} fails its checksum: a character was mistyped or changed; copy it again from the custodian's sheet`,
    );
  }
  return { keyId, bytes: new Uint8Array(Buffer.from(hex, 'hex')) };
}

/**
 * Rebuilds the recovery key from parsed shares of the key `fingerprint`
 * that needs `threshold` shares. Throws RecoveryInputError naming the problem.
 */
export async function combineShares(
  shares: ParsedShare[],
  fingerprint: string,
  threshold: number,
): Promise<Buffer> {
  const keyId = keyIdOf(fingerprint);
  shares.forEach((share, index) => {
    if (share.keyId !== keyId) {
      throw new RecoveryInputError(
        `--share number ${index + 1} belongs to recovery key ${share.keyId}, but this backup was escrowed under recovery key ${keyId}`,
      );
    }
  });

  const distinct = new Set(shares.map((share) => Buffer.from(share.bytes).toString('hex')));
  if (distinct.size !== shares.length) {
    throw new RecoveryInputError(
      'the same share was given twice; give shares of different custodians',
    );
  }
  if (shares.length < threshold) {
    throw new RecoveryInputError(
      `${threshold} shares are needed to rebuild recovery key ${keyId}, ${shares.length} given; add --share of another custodian`,
    );
  }

  let key: Uint8Array;
  try {
    key = await combine(shares.map((share) => share.bytes));
  } catch (error) {
    throw new RecoveryInputError(
      `the shares cannot be combined (${error instanceof Error ? error.message : String(error)}): one share is damaged`,
    );
  }
  if (recoveryFingerprint(key) !== fingerprint) {
    throw new RecoveryInputError(
      `the shares do not rebuild recovery key ${keyId} (fingerprint mismatch): one share is damaged or was altered`,
    );
  }
  return Buffer.from(key);
}

function checkOf(body: string): string {
  return crypto.createHash('sha256').update(body).digest('hex').slice(0, checkLength);
}
