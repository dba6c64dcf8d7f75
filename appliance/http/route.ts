import type { Request, Response, Router } from 'express';
import type { Transaction } from 'sequelize';
import type { z } from 'zod';

import type { AuditEntry, AuditTrail } from '../audit/trail';
import type { AuditOutcome } from '../audit/record';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import type { Permission, Role } from '../identity/permissions';
import type { AccessView, Subject } from '../identity/access/decision';
import type { RequestAttributes } from '../identity/access/conditions';
import type { ResourceDescriptor } from '../identity/access/scope';
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
  /** The session passed a second factor (TOTP or a security key) at sign-in. */
  mfaVerified?: boolean;
  /** The request came from a device its owner marked trusted. */
  deviceTrusted?: boolean;
  /** Set when the request authenticated with an API key: its id and the permissions it still holds. */
  apiKey?: {
    id: string;
    permissions: readonly Permission[];
    projectIds?: readonly string[] | null;
  };
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
  /** The caller's grants, loaded once per request; throws 401 for an anonymous request. */
  access(): Promise<AccessView>;
  /**
   * Throws a 403 problem unless the caller may do `permission` on this
   * resource (its project, folders and classification). Handlers call it
   * because the route-level check only found the permission at some scope.
   */
  authorize(permission: Permission, resource?: ResourceDescriptor): Promise<void>;
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

/** Loads the grants behind a principal; AccessControl in production. */
export interface Authorizer {
  viewFor(subject: Subject, attributes: RequestAttributes): Promise<AccessView>;
}

export interface RouteDependencies {
  database: Database;
  audit: AuditTrail;
  authenticate(request: Request): Promise<Principal | undefined>;
  authorizer: Authorizer;
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
  let view: Promise<AccessView> | undefined;

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
    access() {
      if (!context.principal) return Promise.reject(problems.unauthenticated());
      view ??= dependencies.authorizer.viewFor(
        subjectOf(context.principal),
        attributesOf(context.principal, sourceIp),
      );
      return view;
    },
    async authorize(permission, resource) {
      const decision = (await context.access()).decide(permission, resource);
      if (!decision.allowed) throw problems.forbidden(decision.reason!);
    },
  };

  try {
    principal = await authenticated(spec, request, dependencies);
    context.principal = principal;
    if (principal && spec.access !== 'signed-in' && spec.access !== 'public')
      await context.authorize(spec.access);
    if (principal) assertKeyAllows(spec, principal);

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
    response.status(final.status).type(final.mediaType).json(final.toBody(request.originalUrl));
  }
}

async function authenticated(
  spec: RouteSpec,
  request: Request,
  dependencies: RouteDependencies,
): Promise<Principal | undefined> {
  if (spec.access === 'public') return undefined;

  const principal = await dependencies.authenticate(request);
  if (!principal) throw problems.unauthenticated();
  if (principal.mustChangePassword && !spec.allowPendingPasswordChange)
    throw problems.passwordChangeRequired();
  return principal;
}

/**
 * Rejects a request an API key or token may not make: it acts for its owner
 * with at most the permissions it was given, and account routes (sessions,
 * passwords, keys) need a signed-in person.
 */
function assertKeyAllows(spec: RouteSpec, principal: Principal): void {
  if (!principal.apiKey || spec.access === 'public') return;
  if (spec.access === 'signed-in')
    throw problems.forbidden('API keys cannot call account routes; sign in to the console.');
  if (!principal.apiKey.permissions.includes(spec.access))
    throw problems.forbidden(
      principal.apiKey.id.startsWith('oauth:')
        ? `This access token's scope does not include ${spec.access}; request a token whose scope includes it.`
        : `This API key does not grant ${spec.access}; create a key that includes it.`,
    );
}

export function subjectOf(principal: Principal): Subject {
  const projectIds = principal.apiKey?.projectIds;
  return { userId: principal.userId, role: principal.role, ...(projectIds ? { projectIds } : {}) };
}

export function attributesOf(principal: Principal, sourceIp: string): RequestAttributes {
  return {
    sourceIp,
    at: new Date(),
    mfaVerified: principal.mfaVerified ?? false,
    deviceTrusted: principal.deviceTrusted ?? false,
  };
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
