import type { Request, Response, Router } from 'express';
import type { Transaction } from 'sequelize';
import type { z } from 'zod';

import type { AuditEntry, AuditTrail } from '../audit/trail';
import type { AuditOutcome } from '../audit/record';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import type { Permission, Role } from '../identity/permissions';
import { isAllowed } from '../identity/permissions';
import { problems, type ProblemError } from './problem';
import { toProblem } from './errors';
import { validate } from './validate';

/** The signed-in user behind a request. */
export interface Principal {
  userId: string;
  username: string;
  role: Role;
  mustChangePassword: boolean;
  sessionToken?: string;
  /** Set when the request authenticated with an API key: its id and the permissions it still holds. */
  apiKey?: { id: string; permissions: readonly Permission[] };
}

/** What a handler receives: validated input, the caller, and the one way to write. */
export interface RouteContext<Params, Query, Body> {
  principal: Principal | undefined;
  params: Params;
  query: Query;
  body: Body;
  requestId: string;
  sourceIp: string;
  userAgent?: string;
  request: Request;
  response: Response;
  /** Set by the handler when the resource id is known only after the work (a create). */
  resourceId?: string;
  /** Set by the handler to name the actor of an unauthenticated request (a login attempt). */
  actorUsername?: string;
  /** Set by the handler to keep a short, secret-free note in the audit record (a role change). */
  auditNote?: string;
  /**
   * Runs `work` in the single write transaction of this request; the audit
   * record is appended in the same transaction, so either both land or neither.
   */
  commit<T>(work: (transaction: Transaction) => Promise<T>): Promise<T>;
}

export interface RouteResult {
  status?: number;
  body?: unknown;
}

/** Who may call a route: a named permission, any signed-in user, or anyone. */
export type Access = Permission | 'signed-in' | 'public';

/** A route of the API: its audit action and access rule are part of its definition, never optional. */
export interface RouteSpec<
  P extends z.ZodType = z.ZodType,
  Q extends z.ZodType = z.ZodType,
  B extends z.ZodType = z.ZodType,
> {
  method: 'get' | 'post' | 'patch' | 'put' | 'delete';
  path: string;
  /** Audit action, dotted domain words: `vault.prompt.read`. */
  action: string;
  /** Audit resource type: `prompt`, `alert`, `session` ... */
  resource: string;
  access: Access;
  /** Allows a user whose one-time password is still pending to call this route. */
  allowPendingPasswordChange?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  handler(context: RouteContext<z.infer<P>, z.infer<Q>, z.infer<B>>): Promise<RouteResult | void>;
}

/** Builds a RouteSpec with its schema types inferred. */
export function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  spec: RouteSpec<P, Q, B>,
): RouteSpec {
  return spec as unknown as RouteSpec;
}

export interface RouteDependencies {
  database: Database;
  audit: AuditTrail;
  authenticate(request: Request): Promise<Principal | undefined>;
}

/**
 * Mounts routes with one pipeline for all of them: authenticate, authorise,
 * validate, run, audit. A request whose audit record cannot be written is
 * refused with 503, and its writes roll back with the record.
 */
export function mountRoutes(
  router: Router,
  specs: RouteSpec[],
  dependencies: RouteDependencies,
): void {
  for (const spec of specs) {
    router[spec.method](spec.path, (request, response) => {
      void handle(spec, request, response, dependencies);
    });
  }
}

async function handle(
  spec: RouteSpec,
  request: Request,
  response: Response,
  dependencies: RouteDependencies,
) {
  const requestId = String(request.id);
  const sourceIp = request.socket.remoteAddress ?? 'unknown';
  let principal: Principal | undefined;
  let audited = false;

  const context: RouteContext<unknown, unknown, unknown> = {
    principal: undefined,
    params: {},
    query: {},
    body: undefined,
    requestId,
    sourceIp,
    userAgent: request.get('user-agent'),
    request,
    response,
    commit: (work) =>
      dependencies.database.write(async (transaction) => {
        const result = await work(transaction);
        await appendOrRefuse(dependencies.audit, entryFor(spec, context, 'success'), transaction);
        audited = true;
        return result;
      }),
  };

  try {
    principal = await authorise(spec, request, dependencies);
    context.principal = principal;

    context.params = spec.params ? validate(spec.params, request.params, 'params') : request.params;
    context.query = spec.query ? validate(spec.query, request.query, 'query') : {};
    context.body = spec.body ? validate(spec.body, request.body ?? {}, 'body') : undefined;

    const result = (await spec.handler(context)) ?? {};
    if (!audited) {
      await appendOrRefuse(dependencies.audit, entryFor(spec, context, 'success'));
    }

    send(response, result);
  } catch (error) {
    const problem = toProblem(error, { requestId, action: spec.action });
    const outcome: AuditOutcome =
      problem.status === 401 || problem.status === 403 || problem.status === 429
        ? 'denied'
        : 'failure';

    const recorded =
      audited || (await tryAppend(dependencies.audit, entryFor(spec, context, outcome, problem)));
    const final = recorded ? problem : problems.auditUnavailable();
    response
      .status(final.status)
      .type('application/problem+json')
      .json(final.toBody(request.originalUrl));
  }
}

async function authorise(spec: RouteSpec, request: Request, dependencies: RouteDependencies) {
  if (spec.access === 'public') return undefined;

  const principal = await dependencies.authenticate(request);
  if (!principal) throw problems.unauthenticated();
  if (principal.mustChangePassword && !spec.allowPendingPasswordChange)
    throw problems.passwordChangeRequired();

  if (spec.access !== 'signed-in' && !isAllowed(principal.role, spec.access)) {
    throw problems.forbidden(
      `The role "${principal.role}" does not grant ${spec.access}; ask an admin for a role that does.`,
    );
  }

  // An API key acts for its owner with at most the permissions it was given;
  // account routes (sessions, passwords, keys) need a signed-in person.
  if (principal.apiKey) {
    if (spec.access === 'signed-in')
      throw problems.forbidden('API keys cannot call account routes; sign in to the console.');
    if (!principal.apiKey.permissions.includes(spec.access))
      throw problems.forbidden(
        `This API key does not grant ${spec.access}; create a key that includes it.`,
      );
  }
  return principal;
}

function entryFor(
  spec: RouteSpec,
  context: RouteContext<unknown, unknown, unknown>,
  outcome: AuditOutcome,
  problem?: ProblemError,
): AuditEntry {
  const principal = context.principal;
  const params = context.params as Record<string, string> | undefined;
  const resourceId = context.resourceId ?? params?.id;

  return {
    requestId: context.requestId,
    actor: principal
      ? { userId: principal.userId, username: principal.username, role: principal.role }
      : context.actorUsername
        ? { username: context.actorUsername }
        : {},
    action: spec.action,
    resource: {
      type: spec.resource,
      ...(resourceId ? { id: String(resourceId).slice(0, 64) } : {}),
    },
    outcome,
    sourceIp: context.sourceIp,
    ...auditReasonOf(context, problem),
  };
}

/** Builds the audit reason from the problem or the handler's note, and the API key the request used. */
function auditReasonOf(
  context: RouteContext<unknown, unknown, unknown>,
  problem?: ProblemError,
): { reason?: string } {
  const parts = [
    problem ? auditReason(problem) : undefined,
    context.auditNote,
    context.principal?.apiKey ? `api_key=${context.principal.apiKey.id}` : undefined,
  ].filter((part): part is string => Boolean(part));
  return parts.length ? { reason: parts.join('; ') } : {};
}

/** The reason kept in the audit record: the problem code and the names of bad fields, never their values. */
function auditReason(problem: ProblemError): string {
  const fields = problem.errors?.map((error) => error.field).join(',');
  return fields ? `${problem.code}: ${fields}` : problem.code;
}

async function appendOrRefuse(
  audit: AuditTrail,
  entry: AuditEntry,
  transaction?: Transaction,
): Promise<void> {
  try {
    if (transaction) await audit.append(entry, transaction);
    else await audit.appendAlone(entry);
  } catch (error) {
    logger.error(
      { err: error, requestId: entry.requestId, action: entry.action },
      'audit record could not be written',
    );
    throw problems.auditUnavailable();
  }
}

async function tryAppend(audit: AuditTrail, entry: AuditEntry): Promise<boolean> {
  try {
    await audit.appendAlone(entry);
    return true;
  } catch (error) {
    logger.error(
      { err: error, requestId: entry.requestId, action: entry.action },
      'audit record could not be written',
    );
    return false;
  }
}

function send(response: Response, result: RouteResult) {
  const status = result.status ?? (result.body === undefined ? 204 : 200);
  if (result.body === undefined) response.status(status).end();
  else response.status(status).json(result.body);
}
