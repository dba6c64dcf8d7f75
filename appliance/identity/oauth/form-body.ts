import express, { type RequestHandler } from 'express';

import { OAuthError } from './errors';

/**
 * Parses an application/x-www-form-urlencoded body, which RFC 6749 requires
 * of token requests. Mount it on POST /oauth/token only: every other route
 * takes JSON alone.
 */
export function tokenFormParser(maxBodyBytes: number): RequestHandler {
  const parse = express.urlencoded({ extended: false, limit: maxBodyBytes, parameterLimit: 32 });
  return (request, response, next) => {
    if (!request.is('application/x-www-form-urlencoded')) return next();

    // An oversized body keeps its 413; other parser errors (too many
    // parameters, an unknown charset) are the client's, not a 500.
    parse(request, response, (error?: unknown) => {
      const type = (error as { type?: string } | undefined)?.type;
      if (!error || type === 'entity.too.large') return next(error);
      next(
        new OAuthError(
          'invalid_request',
          'The form body could not be read: send at most 32 UTF-8 parameters.',
        ),
      );
    });
  };
}
