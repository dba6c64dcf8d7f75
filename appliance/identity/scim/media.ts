import express, { type NextFunction, type Request, type Response } from 'express';

import type { ProblemBody } from '../../http/problem';
import { scimTypeOf } from './errors';
import { scimSchemas } from './schemas';

export const scimMediaType = 'application/scim+json';

/** Path of the SCIM service root, below /api/v1. */
export const scimRoot = '/scim/v2';

/**
 * Builds the middleware for everything under the SCIM root: SCIM responses
 * (below), then a body parser for application/scim+json, the media type SCIM
 * clients send (RFC 7644 section 3.1). The API's own parser reads application/json.
 */
export function scimMiddleware(maxBodyBytes: number): express.Router {
  const router = express.Router();
  router.use(scimResponses);
  router.use(express.json({ type: scimMediaType, limit: maxBodyBytes, strict: true }));
  return router;
}

const problemTypePrefix = 'urn:prompt-bank-appliance:problem:';

/**
 * Express middleware for the SCIM routes: every JSON response goes out as
 * application/scim+json, and problem details become SCIM error responses
 * (RFC 7644 section 3.12) with the same status and detail plus a scimType.
 * It wraps `response.json`, so errors from any step of the route pipeline
 * (authentication, validation, the handler, an unknown path) are covered.
 */
export function scimResponses(_request: Request, response: Response, next: NextFunction): void {
  const sendJson = response.json.bind(response);
  response.json = (body: unknown) => {
    response.type(scimMediaType);
    return sendJson(isProblem(body) ? toScimError(body) : body);
  };
  next();
}

function isProblem(body: unknown): body is ProblemBody {
  const type = (body as { type?: unknown } | null)?.type;
  return typeof type === 'string' && type.startsWith(problemTypePrefix);
}

function toScimError(problem: ProblemBody) {
  const scimType = scimTypeOf(problem.type.slice(problemTypePrefix.length));
  return {
    schemas: [scimSchemas.error],
    status: String(problem.status),
    ...(scimType ? { scimType } : {}),
    detail: problem.detail,
  };
}
