import path from 'node:path';

import { auditRecordToEcs } from '../collectors/audit-events';
import { createPipeline, type Pipeline } from '../collectors/pipeline';
import { lazySearchEngine, redactUrl } from '../collectors/search/connect';
import type { SearchEngine } from '../collectors/search/engine';
import { alertRoutes } from './alerts/routes';
import { AlertStore } from './alerts/store';
import type { AuditSink } from './audit/forwarder';
import type { AuditTrail } from './audit/trail';
import { withIngestTimestamp } from './detection/ingest-time';
import { DetectionScheduler } from './detection/scheduler';
import type { RouteSpec } from './http/route';
import type { ApplianceConfig } from './platform/config';
import type { Database } from './platform/database';
import { logger } from './platform/logger';

/** The event side of the appliance: search engine, collector pipeline, audit shipping, detections and alerts. */
export interface EventServices {
  engine: SearchEngine;
  pipeline: Pipeline;
  /** Where the audit forwarder sends records; they are spooled as ECS events. */
  auditSink: AuditSink;
  alerts: AlertStore;
  /** API routes of this side (the alerts API). */
  routes: RouteSpec[];
  detections: DetectionScheduler;
  /** Starts shipping events and the detection timer. */
  start(): void;
  /** Stops the detection timer, then the pipeline, then closes the engine connection. */
  stop(): Promise<void>;
}

/**
 * Wires the search engine, the pipeline (spool in `<spoolDir>/events`) and
 * the detections. The engine connects on first use, so the appliance starts
 * while the engine is down: events wait in the spool and detections retry.
 */
export async function connectEvents(
  config: ApplianceConfig,
  database: Database,
  _audit: AuditTrail,
): Promise<EventServices> {
  const engine = lazySearchEngine(config.search.url);
  await engine
    .info()
    .catch((error: unknown) =>
      logger.warn(
        { err: error, searchUrl: redactUrl(config.search.url) },
        'search engine not reachable yet; events stay in the spool until it is',
      ),
    );

  const pipeline = await createPipeline({
    engine: withIngestTimestamp(engine),
    spoolDir: path.join(config.spoolDir, 'events'),
    indexPrefix: config.search.indexPrefix,
  });
  const alerts = new AlertStore(database);
  const detections = new DetectionScheduler({
    engine,
    database,
    store: alerts,
    indexPrefix: config.search.indexPrefix,
    detection: config.detection,
  });

  return {
    engine,
    pipeline,
    auditSink: { submitAudit: (records) => pipeline.submit(records.map(auditRecordToEcs)) },
    alerts,
    routes: alertRoutes(alerts, engine),
    detections,
    start() {
      pipeline.start();
      detections.start();
    },
    async stop() {
      await detections.stop();
      await pipeline.stop();
      await engine.close();
    },
  };
}
