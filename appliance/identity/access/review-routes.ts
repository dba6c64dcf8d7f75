import crypto from 'node:crypto';

import { z } from 'zod';

import type { KeyProvider } from '../../../hsm/key-provider';
import { signatureAlgorithm } from '../../audit/checkpoints';
import { route, type RouteSpec } from '../../http/route';
import { assertFutureExpiry } from './changes';
import type { AccessReviews } from './reviews';

/** Maximum length of a review campaign, because a longer review shows little about current access. */
const maxCampaignMs = 180 * 24 * 60 * 60 * 1000;

const newCampaign = z
  .object({
    name: z.string().trim().min(1).max(120),
    dueAt: z.iso.datetime({ offset: true }),
    unreviewedAction: z.enum(['revoke', 'keep']).default('revoke'),
  })
  .strict();
const byId = z.object({ id: z.uuid() });
const itemPath = z.object({ id: z.uuid(), itemId: z.uuid() });
const itemDecision = z
  .object({ decision: z.enum(['keep', 'revoke']), comment: z.string().trim().max(500).optional() })
  .strict();

/** Access review campaigns and their signed evidence report. */
export function reviewRoutes(reviews: AccessReviews, keys: KeyProvider): RouteSpec[] {
  return [
    route({
      method: 'post',
      path: '/access/reviews',
      action: 'access.review.open',
      resource: 'access-review',
      access: 'users:approve',
      body: newCampaign,
      async handler(context) {
        const dueAt = assertFutureExpiry(context.body.dueAt, 'dueAt', maxCampaignMs);
        const id = await context.commit(async (transaction) => {
          const created = await reviews.open(
            { ...context.body, dueAt, createdBy: context.principal!.userId },
            transaction,
          );
          context.resourceId = created;
          return created;
        });
        return { status: 201, body: await reviews.get(id) };
      },
    }),

    route({
      method: 'get',
      path: '/access/reviews',
      action: 'access.review.list',
      resource: 'access-review',
      access: 'evidence:read',
      async handler() {
        return { body: { items: await reviews.list() } };
      },
    }),

    route({
      method: 'get',
      path: '/access/reviews/:id',
      action: 'access.review.read',
      resource: 'access-review',
      access: 'evidence:read',
      params: byId,
      async handler(context) {
        return { body: await reviews.get(context.params.id) };
      },
    }),

    route({
      method: 'post',
      path: '/access/reviews/:id/items/:itemId',
      action: 'access.review.decide',
      resource: 'access-review',
      access: 'users:approve',
      params: itemPath,
      body: itemDecision,
      async handler(context) {
        const { id, itemId } = context.params;
        const item = await context.commit(async (transaction) => {
          const decided = await reviews.decide(
            id,
            itemId,
            { ...context.body, reviewerId: context.principal!.userId },
            transaction,
          );
          context.auditNote = `item ${itemId} user=${decided.userId} ${decided.kind} ${decided.role ?? ''} decision=${decided.decision}`;
          return decided;
        });
        return { body: item };
      },
    }),

    route({
      method: 'post',
      path: '/access/reviews/:id/close',
      action: 'access.review.close',
      resource: 'access-review',
      access: 'users:approve',
      params: byId,
      async handler(context) {
        await context.commit(async (transaction) => {
          const expired = await reviews.close(
            context.params.id,
            context.principal!.userId,
            transaction,
          );
          context.auditNote = `${expired} unreviewed item(s) expired`;
        });
        return { body: await reviews.get(context.params.id) };
      },
    }),

    route({
      method: 'get',
      path: '/access/reviews/:id/report',
      action: 'access.review.export',
      resource: 'access-review',
      access: 'evidence:export',
      params: byId,
      async handler(context) {
        return { body: signedReport(await reviews.get(context.params.id), keys) };
      },
    }),
  ];
}

/**
 * Packages the campaign as evidence: the exact JSON text that was signed, its SHA-256,
 * and an ECDSA P-256 signature from the HSM that `openssl dgst -sha256
 * -verify` checks against the published public key.
 */
function signedReport(content: unknown, keys: KeyProvider) {
  const document = JSON.stringify({
    generatedAt: new Date().toISOString(),
    ...(content as object),
  });
  const digest = crypto.createHash('sha256').update(document).digest();
  return {
    document,
    sha256: digest.toString('hex'),
    signature: keys.signDigest(digest).toString('base64'),
    signatureAlgorithm,
    signingKeyUri: keys.signingKeyUri,
    publicKeyPem: keys.signingPublicKeyPem(),
  };
}
