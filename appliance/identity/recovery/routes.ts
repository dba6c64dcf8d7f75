import { z } from 'zod';

import type { AuditTrail } from '../../audit/trail';
import { ProblemError } from '../../http/problem';
import { route, type RouteContext, type RouteSpec } from '../../http/route';
import type { Database } from '../../platform/database';
import { logger } from '../../platform/logger';
import { chosenPassword } from '../password-policy';
import type { IdentityService } from '../service';
import { normaliseEmail, normaliseUsername, type User } from '../users';
import { RecoveryMailer } from './mailer';
import type { RecoverySettings } from './settings';
import { RecoveryThrottle } from './throttle';
import { RecoveryTokens } from './tokens';

type AnyContext = RouteContext<unknown, unknown, unknown>;

const recoveryRequest = z
  .object({
    username: z.string().min(1).max(256).optional(),
    email: z.string().min(1).max(256).optional(),
  })
  .strict()
  .refine((body) => (body.username === undefined) !== (body.email === undefined), {
    message: 'send exactly one of username or email',
    path: ['username'],
  });

const recoveryCompletion = z.object({
  token: z.string().min(1).max(128),
  newPassword: chosenPassword,
});

export interface RecoveryRouteDependencies {
  identity: IdentityService;
  database: Database;
  audit: AuditTrail;
  /** Undefined when SMTP_HOST is unset: both routes then return 404. */
  settings: RecoverySettings | undefined;
  /** APPLIANCE_HOST, for links when RECOVERY_CONSOLE_URL is unset. */
  applianceHost: string;
  throttle?: RecoveryThrottle;
}

/** Account recovery by a one-time link sent to the user's email address. */
export function recoveryRoutes(dependencies: RecoveryRouteDependencies): RouteSpec[] {
  const { identity, database, audit, settings } = dependencies;
  const throttle = dependencies.throttle ?? new RecoveryThrottle();
  const tokens = settings ? new RecoveryTokens(database, settings.tokenMinutes) : undefined;
  const mailer = settings ? new RecoveryMailer(settings.smtp) : undefined;

  const enabled = () => {
    if (!settings || !tokens || !mailer) throw notConfigured();
    return { settings, tokens, mailer };
  };

  return [
    route({
      method: 'post',
      path: '/auth/recovery',
      action: 'auth.recovery.request',
      resource: 'user',
      access: 'public',
      body: recoveryRequest,
      async handler(context) {
        const { settings, tokens, mailer } = enabled();
        const { username, email } = context.body;
        const identifier = username ?? email ?? '';
        context.actorUsername = identifier.slice(0, 64);
        // The response is the same whatever happens below, so the caller cannot tell which accounts exist.
        const accepted = { status: 202, body: acceptedBody(settings.tokenMinutes) };

        const addressWait = await throttle.consumeAddress(context.sourceIp);
        if (addressWait !== undefined) {
          context.response.set('Retry-After', String(addressWait));
          throw rateLimited(addressWait);
        }

        const user = username
          ? (await identity.users.findWithHash(username))?.user
          : await identity.users.findByEmail(identifier);
        if (user) context.resourceId = user.id;
        const accountWait = await throttle.consumeAccount(accountKeyOf(user, username, email));

        const skipped = skipReason(user, accountWait);
        if (skipped || !user?.email) {
          context.auditNote = `no mail: ${skipped ?? 'no email address'}`;
          return accepted;
        }

        const recipient = user.email;
        const issued = await context.commit(async (transaction) => {
          context.auditNote = 'recovery link issued; mail queued';
          return tokens.issue(user.id, transaction);
        });

        // Sent after the response, so the response time does not depend on the mail server.
        void deliver({
          mailer,
          audit,
          context,
          user,
          mail: {
            to: recipient,
            username: user.username,
            link: recoveryLink(settings, dependencies.applianceHost, context, issued.token),
            validMinutes: settings.tokenMinutes,
          },
        });
        return accepted;
      },
    }),

    route({
      method: 'post',
      path: '/auth/recovery/complete',
      action: 'auth.recovery.complete',
      resource: 'user',
      access: 'public',
      body: recoveryCompletion,
      async handler(context) {
        const { tokens } = enabled();

        await context.commit(async (transaction) => {
          const userId = await tokens.redeem(context.body.token, transaction);
          const user = userId ? await identity.users.findById(userId, transaction) : undefined;
          if (!user || user.disabled) throw invalidToken();

          context.resourceId = user.id;
          context.actorUsername = user.username;
          await identity.users.setPassword(user.id, context.body.newPassword, transaction);
          await identity.sessions.closeAllFor(user.id, transaction);
          context.auditNote = 'password set by recovery link; all sessions closed';
        });
      },
    }),
  ];
}

/** Counts requests per account when it exists, else per normalised name or address as given. */
function accountKeyOf(
  user: User | undefined,
  username: string | undefined,
  email: string | undefined,
): string {
  if (user) return `user:${user.id}`;
  if (username !== undefined) return `username:${normaliseUsername(username)}`;
  return `email:${normaliseEmail(email ?? '')}`;
}

/** Returns why no link is sent to a found or unknown account, or undefined when one may be sent. */
function skipReason(user: User | undefined, accountWait: number | undefined): string | undefined {
  if (!user) return 'unknown account';
  if (user.disabled) return 'account disabled';
  if (accountWait !== undefined) return 'too many requests for this account';
  return undefined;
}

/**
 * Sends the mail and appends its outcome to the audit trail as
 * `auth.recovery.mail`. Failures are logged and audited, never thrown: the
 * caller already has its response.
 *
 * NOTE: the mail goes out before its outcome record is written, so when the
 * trail fails at that moment a sent mail has only the request's record
 * ("mail queued") and an error in the log.
 */
async function deliver(delivery: {
  mailer: RecoveryMailer;
  audit: AuditTrail;
  context: AnyContext;
  user: User;
  mail: Parameters<RecoveryMailer['send']>[0];
}): Promise<void> {
  const { mailer, audit, context, user, mail } = delivery;
  let reason: string | undefined;
  try {
    await mailer.send(mail);
  } catch (error) {
    reason = `smtp_failed: ${smtpErrorCode(error)}`;
    // Only the error code: the error may carry the message object, which contains the link.
    logger.warn(
      { requestId: context.requestId, userId: user.id, code: smtpErrorCode(error) },
      'recovery mail could not be sent',
    );
  }

  try {
    await audit.appendAlone({
      requestId: context.requestId,
      actor: { userId: user.id, username: user.username, role: user.role },
      action: 'auth.recovery.mail',
      resource: { type: 'user', id: user.id },
      outcome: reason ? 'failure' : 'success',
      sourceIp: context.sourceIp,
      ...(reason ? { reason } : {}),
    });
  } catch (error) {
    logger.error(
      { err: error, requestId: context.requestId, action: 'auth.recovery.mail' },
      'audit record could not be written',
    );
  }
}

/** Returns the short code of a nodemailer or socket error (EAUTH, ECONNECTION, ESOCKET ...). */
function smtpErrorCode(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string')
    return error.code.slice(0, 32);
  return 'unknown';
}

/** Builds the link to the console's recovery page, `#/recover?token=...`, on RECOVERY_CONSOLE_URL or the appliance's own address. */
function recoveryLink(
  settings: RecoverySettings,
  applianceHost: string,
  context: AnyContext,
  token: string,
): string {
  // The request's Host header is never used: a forged one would send the link to another site.
  const hostPart = applianceHost.includes(':') ? `[${applianceHost}]` : applianceHost;
  const base =
    settings.consoleUrl?.href ?? `https://${hostPart}:${context.request.socket.localPort}/`;
  return `${base}#/recover?token=${token}`;
}

function acceptedBody(tokenMinutes: number) {
  return {
    detail: `If the account exists, is enabled and has an email address, a recovery link valid for ${tokenMinutes} minutes was sent to it.`,
  };
}

function invalidToken(): ProblemError {
  return new ProblemError(
    400,
    'invalid_recovery_token',
    'Invalid recovery link',
    'token: the recovery link is invalid, expired or already used; request a new one.',
    [{ field: 'token', message: 'is invalid, expired or already used' }],
  );
}

function rateLimited(retryAfterSeconds: number): ProblemError {
  return new ProblemError(
    429,
    'rate_limited',
    'Too many recovery requests',
    `Too many recovery requests from this address; try again in ${retryAfterSeconds} seconds.`,
  );
}

function notConfigured(): ProblemError {
  return new ProblemError(
    404,
    'recovery_not_configured',
    'Account recovery by email is off',
    'This appliance has no mail server for recovery links; set SMTP_HOST and SMTP_FROM to turn it on.',
  );
}
