import { z } from 'zod';

import { ProblemError, problems } from '../../http/problem';
import { route, type RouteContext, type RouteSpec } from '../../http/route';
import { validate } from '../../http/validate';
import type { Database } from '../../platform/database';
import { hostCookieOptions, startSession } from '../login-steps';
import { OidcAccounts } from '../oidc/accounts';
import type { IdentityService } from '../service';
import { identityFromAssertion } from './accounts';
import {
  newAttemptHandles,
  samlAttemptCookieName,
  samlAttemptLifetimeSeconds,
  SamlLoginAttempts,
  UsedAssertions,
} from './login-attempts';
import { replayedAssertion, ServiceProvider, type ServiceProviderUrls } from './service-provider';
import type { SamlSettings } from './settings';

type AnyContext = RouteContext<unknown, unknown, unknown>;

/** Path of the assertion consumer service below /api/v1; app.ts mounts the form parser on the same path. */
export const samlAcsRoute = '/auth/saml/acs';

const apiPrefix = '/api/v1';

/** Path of the console, where the ACS sends the signed-in browser. */
const consolePath = '/';

/**
 * The identity provider's auto-submitted form is a cross-site POST, which
 * carries only SameSite=None cookies, so the binding cookie is SameSite=None.
 */
const attemptCookieOptions = { ...hostCookieOptions, sameSite: 'none' } as const;

/**
 * Base64 of a signed response with a few dozen attributes stays far below
 * this, in characters.
 */
const maxResponseLength = 256 * 1024;

const acsBody = z.object({
  SAMLResponse: z.string().min(1).max(maxResponseLength),
  RelayState: z.string().min(1).max(128),
});

/** Builds the SAML 2.0 sign-in routes. Login sends an AuthnRequest, the ACS opens a session and metadata describes the service provider. */
export function samlRoutes(
  identity: IdentityService,
  config: { saml?: SamlSettings; host: string },
  database: Database,
): RouteSpec[] {
  const settings = config.saml;
  const serviceProvider = settings ? new ServiceProvider(settings) : undefined;
  const attempts = new SamlLoginAttempts(database);
  const usedAssertions = new UsedAssertions(database);
  const accounts = new OidcAccounts(database, identity);

  const enabled = () => {
    if (!settings || !serviceProvider) throw notConfigured();
    return { settings, serviceProvider };
  };

  return [
    route({
      method: 'get',
      path: '/auth/saml/login',
      action: 'auth.saml.start',
      resource: 'session',
      access: 'public',
      async handler(context) {
        const { settings, serviceProvider } = enabled();
        const urls = urlsFor(settings, config.host, context);
        const handles = newAttemptHandles();
        const { url, requestId, issuedAt } = await serviceProvider.start(urls, handles.relayState);

        await context.commit((transaction) =>
          attempts.save(handles, { requestId, issuedAt, ...urls }, transaction),
        );
        context.response.cookie(samlAttemptCookieName, handles.binding, {
          ...attemptCookieOptions,
          maxAge: samlAttemptLifetimeSeconds * 1000,
        });
        context.response.set('Cache-Control', 'no-store');
        context.response.set('Location', url.href);
        return { status: 302 };
      },
    }),

    route({
      method: 'post',
      path: samlAcsRoute,
      action: 'auth.saml.login',
      resource: 'session',
      access: 'public',
      async handler(context) {
        const { settings, serviceProvider } = enabled();
        context.response.clearCookie(samlAttemptCookieName, attemptCookieOptions);
        // Validated after the on/off check, so a form posted while SAML is off gets the 404.
        const body = validate(acsBody, context.request.body ?? {}, 'body');

        // The attempt is used up here, before any check, so a response works once.
        const binding = context.request.cookies?.[samlAttemptCookieName] as string | undefined;
        const attempt =
          binding && binding.length <= 64
            ? await attempts.take({ relayState: body.RelayState, binding })
            : undefined;
        if (!attempt)
          throw problems.invalidRequest(
            'No SAML sign-in is in progress in this browser for this RelayState, or it expired or was already used; start again at GET /api/v1/auth/saml/login.',
          );

        const assertion = await serviceProvider.finish(body.SAMLResponse, attempt);
        context.auditNote = `issuer=${assertion.issuer}; assertion=${assertion.assertionId}`;
        const person = identityFromAssertion(assertion, settings);
        context.actorUsername = person.username;

        // The assertion ID is recorded in the same write as the session and
        // its audit record, so a rejected or failed sign-in leaves it unused.
        await startSession(identity, context, async (transaction) => {
          const fresh = await usedAssertions.markUsed(
            { id: assertion.assertionId, issuer: assertion.issuer, expiresAt: assertion.expiresAt },
            transaction,
          );
          if (!fresh) throw replayedAssertion();

          const user = await accounts.provision(person, transaction);
          context.resourceId = user.id;
          return user;
        });
        context.response.set('Cache-Control', 'no-store');
        context.response.set('Location', consolePath);
        return { status: 303 };
      },
    }),

    route({
      method: 'get',
      path: '/auth/saml/metadata',
      action: 'auth.saml.metadata',
      resource: 'session',
      access: 'public',
      async handler(context) {
        const { settings, serviceProvider } = enabled();
        const xml = serviceProvider.metadata(urlsFor(settings, config.host, context));

        // The route pipeline sends JSON or nothing: the XML is written here and
        // the pipeline's empty 200 ends the response.
        context.response.status(200);
        context.response.type('application/samlmetadata+xml');
        context.response.set('Content-Length', String(Buffer.byteLength(xml)));
        context.response.write(xml);
        return { status: 200 };
      },
    }),
  ];
}

/** Returns the configured entity id and ACS URL, else URLs on the appliance's own address (configured host, listening port). */
function urlsFor(settings: SamlSettings, host: string, context: AnyContext): ServiceProviderUrls {
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const base = `https://${hostPart}:${context.request.socket.localPort}${apiPrefix}`;
  return {
    spEntityId: settings.spEntityId ?? `${base}/auth/saml/metadata`,
    acsUrl: settings.acsUrl?.href ?? `${base}${samlAcsRoute}`,
  };
}

function notConfigured(): ProblemError {
  return new ProblemError(
    404,
    'saml_not_configured',
    'SAML sign-in is off',
    'This appliance has no SAML identity provider; set SAML_IDP_SSO_URL and SAML_IDP_CERT_FILE to turn it on.',
  );
}
