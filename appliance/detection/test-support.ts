import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import type { EcsEvent } from '../../collectors/ecs';
import { connectSearchEngine } from '../../collectors/search/connect';
import type { SearchEngine } from '../../collectors/search/engine';
import { eventIndexName, eventIndexPattern } from '../../collectors/search/event-template';
import { AlertStore } from '../alerts/store';
import { loadConfig, type ApplianceConfig } from '../platform/config';
import { openDatabase, type Database } from '../platform/database';
import { migrate } from '../platform/migrations';
import { testSearchUrl } from '../testing/harness';
import { withIngestTimestamp } from './ingest-time';
import { DetectionScheduler } from './scheduler';

/** A migrated SQLite file and the test OpenSearch node under a fresh index prefix. */
export interface DetectionFixture {
  database: Database;
  engine: SearchEngine;
  store: AlertStore;
  indexPrefix: string;
  index: string;
  /** Indexes events stamped with `event.ingested` = now and makes them searchable. */
  indexEvents(events: EcsEvent[]): Promise<void>;
  scheduler(detection?: Partial<ApplianceConfig['detection']>): DetectionScheduler;
  close(): Promise<void>;
}

export async function openDetectionFixture(): Promise<DetectionFixture> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'detection-test-'));
  const database = await openDatabase(path.join(dir, 'appliance.sqlite'));
  await migrate(database);

  const engine = await connectSearchEngine(testSearchUrl);
  const indexPrefix = `test-detect-${crypto.randomBytes(4).toString('hex')}`;
  await engine.ensureEventTemplate(indexPrefix);
  const stamping = withIngestTimestamp(engine);
  const store = new AlertStore(database);
  const index = eventIndexPattern(indexPrefix);

  return {
    database,
    engine,
    store,
    indexPrefix,
    index,
    async indexEvents(events) {
      const results = await stamping.bulkCreate(
        events.map((event) => ({
          index: eventIndexName(indexPrefix, event['@timestamp']),
          id: event.event.id!,
          document: event,
        })),
      );
      const failed = results.filter((result) => result.status !== 'created');
      if (failed.length) throw new Error(`bulk indexing failed: ${JSON.stringify(failed[0])}`);
      await engine.refresh(index);
    },
    scheduler(detection = {}) {
      const defaults = loadConfig({ APPLIANCE_DATA_DIR: dir }).detection;
      return new DetectionScheduler({
        engine,
        database,
        store,
        indexPrefix,
        detection: { ...defaults, ...detection },
      });
    },
    async close() {
      await engine.close();
      await database.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Builds an sshd failed-password event as the auth-log parser writes it. */
export function failedSshLogin(sourceIp: string, time: Date | string): EcsEvent {
  return {
    '@timestamp': new Date(time).toISOString(),
    message: `Failed password for root from ${sourceIp} port 22 ssh2`,
    event: {
      kind: 'event',
      category: ['authentication'],
      type: ['start'],
      action: 'ssh_login',
      outcome: 'failure',
      dataset: 'system.auth',
      module: 'system',
      id: crypto.randomUUID(),
    },
    user: { name: 'root' },
    source: { ip: sourceIp },
  };
}

/** Builds a prompt-read event as the audit forwarder writes it. */
export function promptRead(
  userName: string,
  time: Date | string,
  outcome: 'success' | 'failure' = 'success',
): EcsEvent {
  return {
    '@timestamp': new Date(time).toISOString(),
    event: {
      kind: 'event',
      category: ['database'],
      type: ['access'],
      action: 'vault.prompt.read',
      outcome,
      dataset: 'appliance.audit',
      module: 'appliance',
      id: crypto.randomUUID(),
    },
    user: { name: userName },
    source: { ip: '127.0.0.1' },
  };
}

/** Returns `base` plus `seconds`. */
export function secondsAfter(base: string, seconds: number): Date {
  return new Date(Date.parse(base) + seconds * 1000);
}
