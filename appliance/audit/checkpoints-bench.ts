/**
 * Measures request latency with a checkpoint after every record against
 * checkpoints that never fall due. Run with
 * `LOG_LEVEL=silent npx tsx appliance/audit/checkpoints-bench.ts`; it starts
 * test appliances on 127.0.0.1 with the shared SoftHSM test token.
 */
import { QueryTypes } from 'sequelize';

import { startTestAppliance } from '../testing/harness';
import type { CheckpointingAuditTrail } from './checkpoints-trail';

const warmUpRequests = 50;
const measuredRequests = 500;

async function measure(checkpointRecords: number): Promise<void> {
  const test = await startTestAppliance({
    env: { AUDIT_CHECKPOINT_RECORDS: String(checkpointRecords) },
  });
  try {
    const admin = await test.admin();
    for (let i = 0; i < warmUpRequests; i++) await admin.get('/users');

    const durations: number[] = [];
    for (let i = 0; i < measuredRequests; i++) {
      const started = performance.now();
      const response = await admin.get('/users');
      if (response.status !== 200) throw new Error(`GET /users returned ${response.status}`);
      durations.push(performance.now() - started);
    }
    await (test.appliance.audit as CheckpointingAuditTrail).idle();

    const [{ count }] = await test.appliance.database.sequelize.query<{ count: number }>(
      'SELECT COUNT(*) AS count FROM audit_checkpoints',
      { type: QueryTypes.SELECT },
    );
    durations.sort((a, b) => a - b);
    const percentile = (q: number) => durations[Math.floor(q * (durations.length - 1))].toFixed(1);
    console.log(
      `AUDIT_CHECKPOINT_RECORDS=${checkpointRecords}: p50 ${percentile(0.5)} ms, p95 ${percentile(0.95)} ms, p99 ${percentile(0.99)} ms, ${count} checkpoints`,
    );
  } finally {
    await test.close();
  }
}

for (const checkpointRecords of [1_000_000, 1, 1_000_000, 1]) await measure(checkpointRecords);
