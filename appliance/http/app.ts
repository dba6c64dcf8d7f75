import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import cookieParser from 'cookie-parser';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import { pinoHttp } from 'pino-http';

import { tokenFormParser } from '../identity/oauth/form-body';
import { tokenEndpointPath } from '../identity/oauth/token-routes';
import { logger } from '../platform/logger';
import { repoRoot } from '../platform/config';
import { problems } from './problem';
import { toProblem } from './errors';
import { healthHandler, type HealthReport } from './health';
import { mountRoutes, type RouteDependencies, type RouteSpec } from './route';
import { scimMiddleware, scimRoot } from '../identity/scim/media';

export interface AppOptions extends RouteDependencies {
  routes: RouteSpec[];
  maxBodyBytes: number;
  consoleDir?: string;
  /** Liveness of the parts the appliance depends on, served at GET /api/v1/health. */
  health?: () => Promise<HealthReport>;
}

/** Builds the Express application: security headers, JSON parsing, the API under /api/v1 and the console. */
export function createApp(options: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);

  app.use(
    pinoHttp({
      logger,
      // Query strings can carry one-time values (the OIDC callback's code and
      // state), so request logs keep the path only.
      serializers: {
        req: (request: { id: unknown; method: string; url: string; remoteAddress?: string }) => ({
          id: request.id,
          method: request.method,
          path: request.url.split('?')[0],
          remoteAddress: request.remoteAddress,
        }),
      },
      genReqId: (request, response) => {
        const id = crypto.randomUUID();
        response.setHeader('x-request-id', id);
        return id;
      },
      customLogLevel: (_request, response, error) =>
        error || response.statusCode >= 500
          ? 'error'
          : response.statusCode >= 400
            ? 'debug'
            : 'info',
    }),
  );
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          imgSrc: ["'self'", 'data:'],
          connectSrc: ["'self'"],
          frameAncestors: ["'none'"],
        },
      },
      strictTransportSecurity: { maxAge: 31536000, includeSubDomains: true },
    }),
  );
  app.use(cookieParser());

  const api = express.Router();
  // The SAML assertion consumer service receives an HTML form (HTTP-POST binding).
  api.post('/auth/saml/acs', express.urlencoded({ limit: options.maxBodyBytes, extended: false }));
  api.post(tokenEndpointPath, tokenFormParser(options.maxBodyBytes));
  api.use(scimRoot, scimMiddleware(options.maxBodyBytes));
  api.use((request: Request, _response: Response, next: NextFunction) => {
    const hasBody =
      ['POST', 'PUT', 'PATCH'].includes(request.method) &&
      Number(request.get('content-length') ?? 0) > 0;
    // A body a route-specific parser already read (request.body set) passes.
    if (hasBody && request.body === undefined && !request.is('application/json'))
      return next(problems.unsupportedMediaType());
    next();
  });
  api.use(express.json({ limit: options.maxBodyBytes, strict: true }));
  if (options.health) api.get('/health', healthHandler(options.health));
  mountRoutes(api, options.routes, options);
  api.use((request: Request, _response: Response, next: NextFunction) =>
    next(problems.notFound(`The API route ${request.method} ${request.path}`)),
  );
  api.use(sendProblem);
  app.use('/api/v1', api);

  const consoleDir = options.consoleDir ?? path.join(repoRoot, 'console', 'dist');
  if (fs.existsSync(consoleDir)) {
    app.use(express.static(consoleDir, { index: 'index.html', maxAge: '1h' }));
    app.get(/^\/(?!api\/).*/, (_request, response) =>
      response.sendFile(path.join(consoleDir, 'index.html')),
    );
  }

  return app;
}

/** Last error handler: body-parser and routing errors become problem details. */
function sendProblem(error: unknown, request: Request, response: Response, _next: NextFunction) {
  const problem = toProblem(error, { requestId: String(request.id) });
  response
    .status(problem.status)
    .type('application/problem+json')
    .json(problem.toBody(request.originalUrl));
}
