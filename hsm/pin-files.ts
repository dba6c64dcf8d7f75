import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { HsmError } from './errors';

/**
 * Generates a random PIN of `length` characters from the base64url
 * alphabet (6 bits each, so 32 characters carry 192 bits). The alphabet
 * avoids characters that shells or config files treat specially.
 */
export function generatePin(length: number): string {
  return crypto
    .randomBytes(Math.ceil((length * 6) / 8))
    .toString('base64url')
    .slice(0, length);
}

/**
 * Reads a PIN file. A trailing line break is dropped, so a file edited by
 * hand still works. `who` names the PIN in messages ("user PIN").
 */
export function readPinFile(file: string, who: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new HsmError(
      'hsm_pin_missing',
      `The ${who} file ${file} cannot be read (${reason}). Restore it, or set the PIN file path in the configuration.`,
      { cause: error },
    );
  }

  const pin = text.replace(/\r?\n$/, '');
  if (pin === '') {
    throw new HsmError(
      'hsm_pin_missing',
      `The ${who} file ${file} is empty. Restore the PIN of this token into it.`,
    );
  }
  return pin;
}

/**
 * Restricts the directory of a secret file to its owner (0700). A missing
 * directory is created, and so are its missing parents, also with 0700.
 * Returns whether anything changed.
 */
function secureDirectory(directory: string): boolean {
  if (!fs.existsSync(directory)) {
    fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
    fs.chmodSync(directory, 0o700);
    return true;
  }

  if ((fs.statSync(directory).mode & 0o777) === 0o700) return false;
  fs.chmodSync(directory, 0o700);
  return true;
}

/**
 * Writes a PIN to a new file with mode 0600 in a 0700 directory. The PIN
 * goes to a temporary file first and is renamed into place, so a crash
 * never leaves a partly written PIN file. Throws if the file exists.
 */
export function writePinFile(file: string, pin: string): void {
  secureDirectory(path.dirname(file));

  const temporary = `${file}.${process.pid}.tmp`;
  const descriptor = fs.openSync(temporary, 'wx', 0o600);
  try {
    fs.writeFileSync(descriptor, pin, 'utf8');
    fs.fsyncSync(descriptor);
  } finally {
    fs.closeSync(descriptor);
  }

  try {
    fs.linkSync(temporary, file);
  } finally {
    fs.unlinkSync(temporary);
  }
}

/**
 * Sets mode 0600 on an existing PIN file and 0700 on its directory.
 * Returns whether a mode changed.
 */
export function securePinFile(file: string): boolean {
  const directoryChanged = secureDirectory(path.dirname(file));
  if ((fs.statSync(file).mode & 0o777) === 0o600) return directoryChanged;

  fs.chmodSync(file, 0o600);
  return true;
}
