import { problems, ProblemError } from '../../http/problem';
import { route, type RouteContext, type RouteSpec } from '../../http/route';
import type { Database } from '../../platform/database';
import type { ApplianceConfig } from '../../platform/config';
import { hostCookieOptions } from '../login-steps';
import type { IdentityService } from '../service';
import { sessionCookieName } from '../sessions';
import { OidcAccounts, usernameFromClaims } from './accounts';
import { attemptCookieName, attemptLifetimeSeconds, LoginAttempts } from './login-attempts';
import { ProviderClient } from './provider-client';
import { groupsClaim, roleForGroups } from './role-mapping';
import type { OidcSettings } from './settings';

type AnyContext = RouteContext<unknown, unknown, unknown>;

export const callbackPath = '/api/v1/auth/oidc/callback';

/** Where the console lives; the callback sends the signed-in browser there. */
const consolePath = '/';

/**
 * The binding cookie travels on the provider's redirect back, a cross-site
 * top-level navigation, so it is SameSite=Lax, unlike the session cookie.
 */
const attemptCookieOptions = { ...hostCookieOptions, sameSite: 'lax' } as const;

/** OpenID Connect sign-in: GET login sends the browser to the provider, GET callback opens a session. */
export function oidcRoutes(
  identity: IdentityService,
  config: Pick<ApplianceConfig, 'oidc' | 'host'>,
  database: Database,
): RouteSpec[] {
  const settings = config.oidc;
  const provider = settings ? new ProviderClient(settings) : undefined;
  const attempts = new LoginAttempts(database);
  const accounts = new OidcAccounts(database, identity);

  const enabled = () => {
    if (!settings || !provider) throw notConfigured();
    return { settings, provider };
  };

  return [
    route({
      method: 'get',
      path: '/auth/oidc/login',
      action: 'auth.oidc.start',
      resource: 'session',
      access: 'public',
      async handler(context) {
        const { settings, provider } = enabled();
        const redirectUri = redirectUriFor(settings, config.host, context);
        const { url, attempt } = await provider.start(redirectUri);

        const binding = await context.commit((transaction) => attempts.save(attempt, transaction));
        context.response.cookie(attemptCookieName, binding, {
          ...attemptCookieOptions,
          maxAge: attemptLifetimeSeconds * 1000,
        });
        context.response.set('Cache-Control', 'no-store');
        context.response.set('Location', url.href);
        return { status: 302 };
      },
    }),

    route({
      method: 'get',
      path: '/auth/oidc/callback',
      action: 'auth.oidc.login',
      resource: 'session',
      access: 'public',
      async handler(context) {
        const { settings, provider } = enabled();
        context.response.clearCookie(attemptCookieName, attemptCookieOptions);

        // The attempt is used up here, before any check, so a callback URL works once.
        const binding = context.request.cookies?.[attemptCookieName] as string | undefined;
        const attempt = binding && binding.length <= 64 ? await attempts.take(binding) : undefined;
        if (!attempt)
          throw problems.invalidRequest(
            'No sign-in is in progress in this browser, or it expired or was already used; start again at GET /api/v1/auth/oidc/login.',
          );

        const callbackUrl = new URL(context.request.originalUrl, attempt.redirectUri);
        const verified = await provider.finish(callbackUrl, attempt);
        context.auditNote = `issuer=${verified.issuer}; subject=${verified.subject}`;

        const username = usernameFromClaims(verified.claims);
        if (!username)
          throw problems.forbidden(
            'The identity provider sent no usable preferred_username or email; ask its administrator to release one.',
          );
        context.actorUsername = username;

        const role = roleForGroups(groupsClaim(verified.claims.groups), settings);
        if (!role)
          throw problems.forbidden(
            'None of your groups at the identity provider grants access to this appliance; ask an admin to map one (OIDC_GROUP_ROLE_MAP).',
          );

        await openSession(context, identity, accounts, {
          issuer: verified.issuer,
          subject: verified.subject,
          username,
          role,
        });
        context.response.set('Cache-Control', 'no-store');
        context.response.set('Location', consolePath);
        return { status: 303 };
      },
    }),
  ];
}

/**
 * Provisions or updates the linked user and opens a fresh session in one
 * write with the audit record, replacing any session cookie the browser held.
 */
async function openSession(
  context: AnyContext,
  identity: IdentityService,
  accounts: OidcAccounts,
  person: Parameters<OidcAccounts['provision']>[0],
): Promise<void> {
  const previousToken = context.request.cookies?.[sessionCookieName] as string | undefined;

  const session = await context.commit(async (transaction) => {
    const user = await accounts.provision(person, transaction);
    context.resourceId = user.id;
    context.principal = {
      userId: user.id,
      username: user.username,
      role: user.role,
      mustChangePassword: false,
    };
    if (previousToken && previousToken.length <= 128)
      await identity.sessions.close(previousToken, transaction);
    return identity.sessions.open(
      user.id,
      { sourceIp: context.sourceIp, userAgent: context.userAgent },
      transaction,
    );
  });

  context.response.cookie(sessionCookieName, session.token, {
    ...hostCookieOptions,
    expires: session.expiresAt,
  });
}

/** OIDC_REDIRECT_URI, else the appliance's own address (configured host, listening port). */
function redirectUriFor(settings: OidcSettings, host: string, context: AnyContext): string {
  if (settings.redirectUri) return settings.redirectUri.href;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return `https://${hostPart}:${context.request.socket.localPort}${callbackPath}`;
}

function notConfigured(): ProblemError {
  return new ProblemError(
    404,
    'oidc_not_configured',
    'OpenID Connect sign-in is off',
    'This appliance has no OpenID Connect provider; set OIDC_ISSUER, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET to turn it on.',
  );
}
