import type { Request } from 'express';

import { problems } from '../http/problem';

/**
 * Cookie-authenticated state changes must carry this header with this value.
 * A cross-site form cannot set a custom header, and a cross-site script needs
 * a CORS preflight, which the appliance never grants.
 */
export const csrfHeaderName = 'X-Requested-With';
export const csrfHeaderValue = 'appliance-console';

const stateChangingMethods = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Throws a 403 problem naming the header when a cookie-authenticated write lacks it. */
export function assertCsrfHeader(request: Request): void {
  if (!stateChangingMethods.has(request.method)) return;
  if (request.get(csrfHeaderName) === csrfHeaderValue) return;

  throw problems.forbidden(
    `A ${request.method} request signed in with the session cookie must carry the header ` +
      `${csrfHeaderName}: ${csrfHeaderValue}; the console sends it, scripts should use an API key instead.`,
  );
}
