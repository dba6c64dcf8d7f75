import { dictionary } from '@zxcvbn-ts/language-common';
import { z } from 'zod';

import { minimumPasswordLength } from './passwords';

/**
 * Common passwords from @zxcvbn-ts/language-common (49,233 entries in
 * version 4.1.3), folded the same way as the
 * candidate so the check ignores case and Unicode compatibility forms.
 */
const commonPasswords = new Set(dictionary['passwords-common'].map(foldPassword));

function foldPassword(password: string): string {
  return password.normalize('NFKC').toLowerCase();
}

/** Reports whether a password is on the common-password list, ignoring case and NFKC forms. */
export function isCommonPassword(password: string): boolean {
  return commonPasswords.has(foldPassword(password));
}

/**
 * Schema of a password a user chooses: a minimum length and no common
 * password, with no composition rules.
 */
export const chosenPassword = z
  .string()
  // `abort` stops at the first failed check, so a short password gets one error, not two.
  .min(minimumPasswordLength, {
    message: `must be at least ${minimumPasswordLength} characters`,
    abort: true,
  })
  .max(1024, { abort: true })
  .refine(
    (password) => !isCommonPassword(password),
    'is a commonly used password; choose a longer passphrase that is not on common-password lists',
  );
