import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';
import { z } from 'zod';

import { AlertStore } from '../../alerts/store';
import { problems } from '../../http/problem';
import { route, type RouteSpec } from '../../http/route';
import type { Database } from '../../platform/database';
import { breakGlassRole, type Role } from '../permissions';
import { hostCookieOptions } from '../login-steps';
import { signInGuardsOf } from '../risk/sign-in-guards';
import type { IdentityService } from '../service';
import { sessionCookieName } from '../sessions';
import { grantNote } from './changes';
import type { AccessControl } from './decision';
import { applianceScope } from './scope';

export interface BreakGlassOptions {
  eligibleRoles: readonly Role[];
  maxMinutes: number;
  /** Index pattern of the ECS events, for the alert's link back to what the user did. */
  eventIndexPattern: string;
}

/** A break-glass activation as the API shows it. */
export interface Activation {
  id: string;
  grantId: string;
  userId: string;
  username: string;
  justification: string;
  startedAt: string;
  endsAt: string;
  endedAt: string | null;
  active: boolean;
  alertId: string | null;
  review: {
    reviewedBy: string;
    reviewedAt: string;
    outcome: string;
    comment: string | null;
  } | null;
}

interface ActivationRow {
  id: string;
  grant_id: string;
  user_id: string;
  username: string;
  justification: string;
  started_at: string;
  ends_at: string;
  ended_at: string | null;
  alert_id: string | null;
  reviewed_by: string | null;
  reviewed_at: string | null;
  outcome: string | null;
  review_comment: string | null;
}

const activationRequest = z
  .object({
    justification: z
      .string()
      .trim()
      .min(20, 'must say in at least 20 characters why you need emergency access')
      .max(1000),
    durationMinutes: z.number().int().min(5).default(60),
  })
  .strict();

const reviewRequest = z
  .object({
    outcome: z.enum(['justified', 'unjustified']),
    comment: z.string().trim().min(1).max(1000),
  })
  .strict();

const byId = z.object({ id: z.uuid() });

/**
 * Emergency access: a time-boxed grant of the break-glass role that needs a
 * written justification, raises a high-severity alert in the same
 * transaction, and waits for a review by someone else once it has ended.
 */
export function breakGlassRoutes(
  database: Database,
  access: AccessControl,
  identity: IdentityService,
  options: BreakGlassOptions,
): RouteSpec[] {
  const alerts = new AlertStore(database);

  return [
    route({
      method: 'post',
      path: '/access/break-glass',
      action: 'access.break_glass.open',
      resource: 'break-glass',
      access: 'signed-in',
      body: activationRequest,
      async handler(context) {
        const principal = context.principal!;
        const { justification, durationMinutes } = context.body;
        if (principal.apiKey)
          throw problems.forbidden(
            'Break-glass access is for a signed-in person; sign in to the console.',
          );
        if (!options.eligibleRoles.includes(principal.role))
          throw problems.forbidden(
            `Break-glass access is open to the roles ${options.eligibleRoles.join(', ')}; the role "${principal.role}" is not one of them.`,
          );
        if (durationMinutes > options.maxMinutes)
          throw problems.invalidRequest(`durationMinutes: must be at most ${options.maxMinutes}`, [
            { field: 'durationMinutes', message: `must be at most ${options.maxMinutes}` },
          ]);
        if (
          (await list(database, { userId: principal.userId })).some(
            (activation) => activation.active,
          )
        )
          throw problems.conflict(
            'You already have break-glass access open; end it before opening another.',
          );

        const startedAt = new Date();
        const endsAt = new Date(startedAt.getTime() + durationMinutes * 60_000);
        const result = await context.commit(async (transaction) => {
          const grant = await access.grants.create(
            {
              userId: principal.userId,
              role: breakGlassRole,
              permissions: null,
              scope: applianceScope,
              conditions: null,
              source: 'break-glass',
              grantedBy: principal.userId,
              justification,
              expiresAt: endsAt.toISOString(),
            },
            transaction,
          );
          const alert = await alerts.create(
            {
              ruleId: 'access.break_glass',
              severity: 'high',
              entity: { field: 'user.name', value: principal.username },
              summary: `${principal.username} opened break-glass access for ${durationMinutes} minutes: ${justification.slice(0, 200)}`,
              eventCount: 1,
              firstSeen: startedAt.toISOString(),
              lastSeen: startedAt.toISOString(),
              eventQuery: {
                index: options.eventIndexPattern,
                query: {
                  bool: {
                    filter: [
                      { term: { 'user.name': principal.username } },
                      {
                        range: {
                          '@timestamp': { gte: startedAt.toISOString(), lte: endsAt.toISOString() },
                        },
                      },
                    ],
                  },
                },
              },
            },
            transaction,
          );
          const id = crypto.randomUUID();
          await database.sequelize.query(
            `INSERT INTO break_glass_activations (id, grant_id, user_id, justification, started_at, ends_at, alert_id)
             VALUES (:id, :grantId, :userId, :justification, :startedAt, :endsAt, :alertId)`,
            {
              transaction,
              replacements: {
                id,
                grantId: grant.id,
                userId: principal.userId,
                justification,
                startedAt: startedAt.toISOString(),
                endsAt: endsAt.toISOString(),
                alertId: alert.id,
              },
            },
          );
          context.resourceId = id;
          context.auditNote = `${grantNote(grant)} alert=${alert.id}`;

          // A change of privilege gets a new session token (session fixation),
          // keeping the second factor the old session passed.
          const rotated = principal.sessionToken
            ? await rotateSession(
                identity,
                principal.sessionToken,
                principal.userId,
                context,
                transaction,
              )
            : undefined;
          return { id, rotated };
        });

        if (result.rotated)
          context.response.cookie(sessionCookieName, result.rotated.token, {
            ...hostCookieOptions,
            expires: result.rotated.expiresAt,
          });
        return { status: 201, body: (await list(database, { id: result.id }))[0] };
      },
    }),

    route({
      method: 'get',
      path: '/access/break-glass',
      action: 'access.break_glass.list',
      resource: 'break-glass',
      access: 'evidence:read',
      async handler() {
        return { body: { items: await list(database, {}) } };
      },
    }),

    route({
      method: 'post',
      path: '/access/break-glass/:id/end',
      action: 'access.break_glass.end',
      resource: 'break-glass',
      access: 'signed-in',
      params: byId,
      async handler(context) {
        const activation = await found(database, context.params.id);
        const principal = context.principal!;
        const mayEnd =
          activation.userId === principal.userId || (await context.access()).allows('users:update');
        if (!mayEnd)
          throw problems.forbidden('Only the holder or an admin can end break-glass access.');
        if (!activation.active)
          throw problems.conflict('This break-glass access has already ended.');

        await context.commit(async (transaction) => {
          await access.grants.revoke(
            activation.grantId,
            principal.userId,
            'break-glass ended',
            transaction,
          );
          await setEnded(database, activation.id, transaction);
        });
        return { body: (await list(database, { id: activation.id }))[0] };
      },
    }),

    route({
      method: 'post',
      path: '/access/break-glass/:id/review',
      action: 'access.break_glass.review',
      resource: 'break-glass',
      access: 'users:approve',
      params: byId,
      body: reviewRequest,
      async handler(context) {
        const activation = await found(database, context.params.id);
        const reviewerId = context.principal!.userId;
        if (activation.userId === reviewerId)
          throw problems.forbidden('Someone other than the holder must review break-glass access.');
        if (activation.active)
          throw problems.conflict(
            'Break-glass access is reviewed after it ends; end it first or wait until it expires.',
          );
        if (activation.review)
          throw problems.conflict('This break-glass access was already reviewed.');

        await context.commit(async (transaction) => {
          await database.sequelize.query(
            `UPDATE break_glass_activations SET reviewed_by = :reviewerId, reviewed_at = :now, outcome = :outcome,
               review_comment = :comment WHERE id = :id`,
            {
              transaction,
              replacements: {
                id: activation.id,
                reviewerId,
                now: new Date().toISOString(),
                ...context.body,
              },
            },
          );
          context.auditNote = `review outcome=${context.body.outcome}`;
        });
        return { body: (await list(database, { id: activation.id }))[0] };
      },
    }),
  ];
}

async function rotateSession(
  identity: IdentityService,
  token: string,
  userId: string,
  client: { sourceIp: string; userAgent?: string },
  transaction: Transaction,
): Promise<{ token: string; expiresAt: Date } | undefined> {
  const factors = signInGuardsOf(identity)?.sessionFactors;
  const method = await factors?.methodOf(token);
  const rotated = await identity.sessions.rotate(
    token,
    { sourceIp: client.sourceIp, userAgent: client.userAgent },
    transaction,
  );
  if (rotated && method) await factors!.record(rotated.token, userId, method, transaction);
  return rotated;
}

async function found(database: Database, id: string): Promise<Activation> {
  const [activation] = await list(database, { id });
  if (!activation)
    throw problems.notFoundDetail(
      `No break-glass activation ${id}; list them with GET /api/v1/access/break-glass.`,
    );
  return activation;
}

async function setEnded(database: Database, id: string, transaction: Transaction): Promise<void> {
  await database.sequelize.query(
    'UPDATE break_glass_activations SET ended_at = :now WHERE id = :id AND ended_at IS NULL',
    {
      transaction,
      replacements: { id, now: new Date().toISOString() },
    },
  );
}

/** Activations, newest first; one ends when it is ended by hand, expires, or its grant is revoked. */
async function list(
  database: Database,
  filter: { id?: string; userId?: string },
): Promise<Activation[]> {
  const clauses = [
    filter.id ? 'b.id = :id' : '',
    filter.userId ? 'b.user_id = :userId' : '',
  ].filter(Boolean);
  const rows = await database.sequelize.query<ActivationRow & { revoked_at: string | null }>(
    `SELECT b.*, u.username, g.revoked_at FROM break_glass_activations b
       JOIN users u ON u.id = b.user_id JOIN access_grants g ON g.id = b.grant_id
     ${clauses.length ? `WHERE ${clauses.join(' AND ')}` : ''} ORDER BY b.started_at DESC`,
    { type: QueryTypes.SELECT, replacements: filter },
  );
  const now = Date.now();
  return rows.map((row) => {
    const endedAt =
      row.ended_at ?? row.revoked_at ?? (Date.parse(row.ends_at) <= now ? row.ends_at : null);
    return {
      id: row.id,
      grantId: row.grant_id,
      userId: row.user_id,
      username: row.username,
      justification: row.justification,
      startedAt: iso(row.started_at),
      endsAt: iso(row.ends_at),
      endedAt: endedAt ? iso(endedAt) : null,
      active: !endedAt,
      alertId: row.alert_id,
      review:
        row.reviewed_by && row.reviewed_at && row.outcome
          ? {
              reviewedBy: row.reviewed_by,
              reviewedAt: iso(row.reviewed_at),
              outcome: row.outcome,
              comment: row.review_comment,
            }
          : null,
    };
  });
}

function iso(value: string): string {
  return new Date(value).toISOString();
}
