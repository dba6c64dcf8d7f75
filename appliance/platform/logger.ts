import { pino, type Logger } from 'pino';

/**
 * Paths pino blanks in every line. Prompt text, passwords, PINs, keys and
 * session cookies must never reach a log, whatever object a caller passes.
 */
export const redactedPaths = [
  'password',
  '*.password',
  'newPassword',
  'currentPassword',
  'pin',
  '*.pin',
  'soPin',
  'key',
  '*.key',
  'dataKey',
  'secret',
  '*.secret',
  'body',
  '*.body',
  'text',
  '*.text',
  'title',
  '*.title',
  'req.headers.cookie',
  'req.headers.authorization',
  'res.headers["set-cookie"]',
];

/**
 * Creates the process logger: JSON lines on stderr, level from LOG_LEVEL.
 * Stderr keeps stdout free for what appliancectl prints (`--json` output).
 */
export function createLogger(name: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino(
    { name, level, redact: { paths: redactedPaths, censor: '[redacted]' } },
    pino.destination({ dest: 2, sync: true }),
  );
}

export const logger = createLogger('appliance');
