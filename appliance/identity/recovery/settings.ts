import fs from 'node:fs';

/** Account recovery by email, read from the SMTP_* and RECOVERY_* environment variables. */
export interface RecoverySettings {
  smtp: {
    host: string;
    port: number;
    /** True: TLS from the first byte (SMTPS). False: STARTTLS, required unless the host is a loopback address. */
    secure: boolean;
    requireTls: boolean;
    /** The From address of recovery mail. */
    from: string;
    auth?: { user: string; password: string };
  };
  /** How long a recovery link stays valid, in minutes. */
  tokenMinutes: number;
  /** Console address put in front of `#/recover?token=...`; undefined means `https://<APPLIANCE_HOST>:<port>/`. */
  consoleUrl?: URL;
}

/** Thrown at start-up for a bad SMTP_* or RECOVERY_* setting; the message names the setting and the fix. */
export class RecoverySettingsError extends Error {
  constructor(setting: string, problem: string) {
    super(`Invalid ${setting}: ${problem}`);
    this.name = 'RecoverySettingsError';
  }
}

const loopbackHosts = new Set(['127.0.0.1', '::1', '[::1]', 'localhost']);

/**
 * Reads the recovery settings. Returns undefined when SMTP_HOST is unset
 * (recovery by email off); any other SMTP_* or RECOVERY_* setting without
 * SMTP_HOST is an error, not a silent no-op.
 */
export function readRecoverySettings(env: NodeJS.ProcessEnv): RecoverySettings | undefined {
  const setNames = Object.keys(env).filter(
    (name) => (name.startsWith('SMTP_') || name.startsWith('RECOVERY_')) && env[name] !== '',
  );
  if (!setNames.length) return undefined;
  if (!env.SMTP_HOST)
    throw new RecoverySettingsError(
      'SMTP_HOST',
      `it is required when ${setNames.join(', ')} is set; set it to the mail server's host name.`,
    );

  const host = env.SMTP_HOST;
  const secure = boolean(env, 'SMTP_SECURE', false);
  return {
    smtp: {
      host,
      port: integer(env, 'SMTP_PORT', secure ? 465 : 587, 65535),
      secure,
      requireTls: !secure && !loopbackHosts.has(host),
      from: fromAddress(env.SMTP_FROM),
      auth: credentials(env),
    },
    tokenMinutes: integer(env, 'RECOVERY_TOKEN_MINUTES', 15, 24 * 60),
    consoleUrl: env.RECOVERY_CONSOLE_URL ? consoleUrl(env.RECOVERY_CONSOLE_URL) : undefined,
  };
}

function boolean(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new RecoverySettingsError(name, `${JSON.stringify(raw)} must be true or false.`);
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, maximum: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;

  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0 || value > maximum)
    throw new RecoverySettingsError(
      name,
      `${JSON.stringify(raw)} must be a whole number from 1 to ${maximum}.`,
    );
  return value;
}

function fromAddress(raw: string | undefined): string {
  if (!raw)
    throw new RecoverySettingsError(
      'SMTP_FROM',
      'it is required when SMTP_HOST is set; set the sender address, such as appliance@example.org.',
    );
  return raw;
}

/** SMTP_USER with the password read from SMTP_PASSWORD_FILE, which only its owner may read (mode 0600 or stricter). */
function credentials(env: NodeJS.ProcessEnv): { user: string; password: string } | undefined {
  const user = env.SMTP_USER;
  const file = env.SMTP_PASSWORD_FILE;
  if (!user && !file) return undefined;
  if (!user)
    throw new RecoverySettingsError('SMTP_USER', 'it is required when SMTP_PASSWORD_FILE is set.');
  if (!file)
    throw new RecoverySettingsError(
      'SMTP_PASSWORD_FILE',
      'it is required when SMTP_USER is set; point it to a file with mode 0600 that contains the password.',
    );

  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new RecoverySettingsError('SMTP_PASSWORD_FILE', `${file} cannot be read.`);
  }
  if ((stat.mode & 0o077) !== 0)
    throw new RecoverySettingsError(
      'SMTP_PASSWORD_FILE',
      `${file} is readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); run chmod 600 on it.`,
    );

  const password = fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  if (!password) throw new RecoverySettingsError('SMTP_PASSWORD_FILE', `${file} is empty.`);
  return { user, password };
}

function consoleUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RecoverySettingsError(
      'RECOVERY_CONSOLE_URL',
      `${JSON.stringify(raw)} is not an absolute URL.`,
    );
  }
  if (url.protocol !== 'https:' || url.hash || url.search)
    throw new RecoverySettingsError(
      'RECOVERY_CONSOLE_URL',
      `${JSON.stringify(raw)} must be an https URL without a query or #fragment, such as https://appliance.example.org/.`,
    );
  return url;
}
