import type { Request } from 'express';

import { OAuthError } from './errors';

/** Parameters of a token request, each present at most once and a string. */
export type TokenParameters = Readonly<Record<string, string>>;

/** Client credentials as the client presented them, and how. */
export interface PresentedClient {
  clientId: string;
  secret: string;
  method: 'client_secret_basic' | 'client_secret_post';
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Reads the parameters of a token request from a form or JSON body. A
 * repeated parameter or a value that is not a string is invalid_request
 * (RFC 6749 section 3.2 forbids repeats).
 */
export function readTokenParameters(body: unknown): TokenParameters {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw new OAuthError(
      'invalid_request',
      'The request body must be a form or a JSON object of parameters.',
    );

  const parameters: Record<string, string> = {};
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(value))
      throw new OAuthError('invalid_request', `The parameter ${name} is repeated; send it once.`);
    if (typeof value !== 'string')
      throw new OAuthError('invalid_request', `The parameter ${name} must be a string.`);
    parameters[name] = value;
  }
  return parameters;
}

/** Returns a required parameter or throws invalid_request naming it. */
export function requiredParameter(parameters: TokenParameters, name: string): string {
  const value = parameters[name];
  if (value === undefined || value === '')
    throw new OAuthError('invalid_request', `The parameter ${name} is missing.`);
  return value;
}

/**
 * Reads client authentication: HTTP Basic (RFC 6749 section 2.3.1, both parts
 * form-urlencoded) or client_id and client_secret in the body. Using both is
 * invalid_request; undefined when the request carries neither.
 */
export function presentedClient(
  request: Request,
  parameters: TokenParameters,
): PresentedClient | undefined {
  const authorization = request.get('authorization');
  const inBody = parameters.client_secret !== undefined;
  if (authorization !== undefined && inBody)
    throw new OAuthError(
      'invalid_request',
      'Authenticate the client once: with HTTP Basic or with client_secret in the body, not both.',
    );

  if (authorization !== undefined) return basicCredentials(authorization);
  if (!inBody) return undefined;

  return {
    clientId: requiredParameter(parameters, 'client_id'),
    secret: parameters.client_secret,
    method: 'client_secret_post',
  };
}

/** Splits `scope` (space-delimited) into distinct names; undefined when the parameter is absent. */
export function requestedScope(parameters: TokenParameters): string[] | undefined {
  const scope = parameters.scope;
  if (scope === undefined) return undefined;

  const names = scope.split(' ').filter(Boolean);
  if (!names.length)
    throw new OAuthError(
      'invalid_scope',
      'The parameter scope is empty; omit it to receive every granted permission.',
    );
  return [...new Set(names)];
}

/** Returns the client id for audit notes: the id when it has the shape of one, else `malformed`. */
export function auditableClientId(clientId: string): string {
  return uuidPattern.test(clientId) ? clientId : 'malformed';
}

function basicCredentials(authorization: string): PresentedClient {
  const malformed = new OAuthError(
    'invalid_client',
    'The Authorization header must be "Basic " and base64 of client_id:client_secret.',
  );
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(authorization);
  if (!match) throw malformed;

  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) throw malformed;

  try {
    return {
      clientId: formDecode(decoded.slice(0, colon)),
      secret: formDecode(decoded.slice(colon + 1)),
      method: 'client_secret_basic',
    };
  } catch {
    throw malformed;
  }
}

/** Decodes application/x-www-form-urlencoded text; throws URIError on a bad escape. */
function formDecode(text: string): string {
  return decodeURIComponent(text.replace(/\+/g, ' '));
}
