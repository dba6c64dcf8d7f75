import crypto from 'node:crypto';

/**
 * Prefix of every HKDF `info` string. The full scheme is
 * `prompt-bank-appliance/v1/<purpose>[/<context>...]`. The purpose names
 * what the derived bytes are for, in lower-case words joined by `-` (such as
 * `checkpoint-id`). Each context part binds them to one object, such as a
 * seq or a prompt id. Distinct purposes and contexts give independent
 * outputs from one input key, and a new layout needs a new version.
 */
export const hkdfInfoPrefix = 'prompt-bank-appliance/v1';

const purposePattern = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** Max output of HKDF-SHA256: 255 blocks of 32 bytes (RFC 5869, section 2.3). */
const maxOutputLength = 255 * 32;

/**
 * Builds an HKDF `info` string of the scheme in hkdfInfoPrefix. Throws when
 * `purpose` is not lower-case words joined by `-`, or when a context part is
 * empty or contains `/`, because either would make two inputs share one string.
 */
export function hkdfInfo(purpose: string, ...context: (string | number)[]): string {
  if (!purposePattern.test(purpose)) {
    throw new Error(
      `Invalid HKDF purpose ${JSON.stringify(purpose)}: use lower-case letters and digits in words joined by "-".`,
    );
  }

  const parts = context.map(String);
  const invalid = parts.find((part) => part === '' || part.includes('/'));
  if (invalid !== undefined) {
    throw new Error(
      `Invalid HKDF context part ${JSON.stringify(invalid)}: it must be non-empty and contain no "/".`,
    );
  }
  return [hkdfInfoPrefix, purpose, ...parts].join('/');
}

/**
 * Derives `length` bytes with HKDF-SHA256 (RFC 5869) from input keying
 * material `ikm`. `info` must come from hkdfInfo(), so every derivation
 * names its purpose. An empty `salt` means the RFC's default of 32 zero bytes.
 */
export function hkdfSha256(ikm: Buffer, salt: Buffer, info: string, length: number): Buffer {
  if (!info.startsWith(`${hkdfInfoPrefix}/`)) {
    throw new Error(
      `Invalid HKDF info ${JSON.stringify(info)}: build it with hkdfInfo() so that it starts with "${hkdfInfoPrefix}/".`,
    );
  }
  if (!Number.isInteger(length) || length < 1 || length > maxOutputLength) {
    throw new Error(
      `Invalid HKDF output length ${length}: expected a whole number of bytes from 1 to ${maxOutputLength}.`,
    );
  }
  return Buffer.from(crypto.hkdfSync('sha256', ikm, salt, Buffer.from(info, 'utf8'), length));
}
