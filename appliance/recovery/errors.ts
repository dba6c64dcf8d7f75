/**
 * Bad input to a recovery or backup command: a share, a backup file, a
 * custodian list. The message names the input and the fix; the CLI ends with
 * exit code 2 and nothing has been written.
 */
export class RecoveryInputError extends Error {}
