import { HsmError } from '../../hsm/errors';
import { logger } from '../platform/logger';
import { ProblemError, problems } from './problem';

/**
 * Maps any thrown value to a problem. Expected errors keep their status; an
 * HSM failure becomes 503 (fail closed); anything else is logged with the
 * request id and becomes a generic 500 that reveals nothing.
 */
export function toProblem(
  error: unknown,
  context: { requestId: string; action?: string },
): ProblemError {
  if (error instanceof ProblemError) return error;

  if (error instanceof HsmError) {
    logger.error(
      { err: error, requestId: context.requestId, action: context.action },
      'HSM operation failed',
    );
    return problems.hsmUnavailable(error.message);
  }

  const bodyError = error as { type?: string; status?: number; limit?: number };
  if (bodyError?.type === 'entity.too.large') return problems.payloadTooLarge(bodyError.limit ?? 0);
  if (bodyError?.type === 'entity.parse.failed') return problems.malformedJson();

  logger.error(
    { err: error, requestId: context.requestId, action: context.action },
    'request failed',
  );
  return problems.internal();
}
