import { z } from 'zod';

import type { KeyProvider } from '../../hsm/key-provider';
import { problems } from '../http/problem';
import { route, type RouteSpec } from '../http/route';
import { signatureAlgorithm, type Checkpoint, type CheckpointStore } from './checkpoints';

const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  beforeSeq: z.coerce.number().int().min(1).optional(),
});

const checkpointParams = z.object({ seq: z.coerce.number().int().min(1) });

/**
 * Signed audit checkpoints: a list, and one checkpoint with everything an
 * auditor needs to check it offline (statement bytes, DER signature and the
 * signing public key).
 */
export function checkpointRoutes(
  store: CheckpointStore,
  keys: Pick<KeyProvider, 'signingPublicKeyPem'>,
): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/audit/checkpoints',
      action: 'audit.checkpoint.list',
      resource: 'audit_checkpoint',
      access: 'audit:read',
      query: listQuery,
      async handler(context) {
        const checkpoints = await store.list(context.query.limit, context.query.beforeSeq);
        return { body: { items: checkpoints.map(summary) } };
      },
    }),

    route({
      method: 'get',
      path: '/audit/checkpoints/:seq',
      action: 'audit.checkpoint.read',
      resource: 'audit_checkpoint',
      access: 'audit:read',
      params: checkpointParams,
      async handler(context) {
        context.resourceId = String(context.params.seq);
        const checkpoint = await store.get(context.params.seq);
        if (!checkpoint) {
          throw problems.notFound(
            `Audit checkpoint at seq ${context.params.seq}; list them with GET /api/v1/audit/checkpoints`,
          );
        }

        return {
          body: {
            ...summary(checkpoint),
            statement: JSON.parse(checkpoint.statement),
            statementBase64: Buffer.from(checkpoint.statement, 'utf8').toString('base64'),
            signatureBase64: checkpoint.signature.toString('base64'),
            signatureAlgorithm,
            publicKeyPem: keys.signingPublicKeyPem(),
          },
        };
      },
    }),
  ];
}

function summary(checkpoint: Checkpoint) {
  return {
    seq: checkpoint.seq,
    hash: checkpoint.hash,
    recordCount: checkpoint.recordCount,
    time: checkpoint.time,
    signingKeyUri: checkpoint.signingKeyUri,
  };
}
