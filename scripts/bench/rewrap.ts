/**
 * Master key rewrap benchmark: wrapped data keys moved per second from
 * master key version 1 to version 2. Ours is the rewrap job (unwrap and wrap
 * inside SoftHSM, batches of SQLite write transactions with their cursor).
 * The peer rewraps the same data keys with Node's own RFC 3394 key wrap
 * (`id-aes256-wrap`) under two AES-256 keys in memory, with no database and
 * no HSM. The ratio shows what the token and the durable, resumable batches cost.
 *
 *   node --import tsx scripts/bench/rewrap.ts [dataKeys]   prints JSON
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { QueryTypes } from 'sequelize';

import { ensureToken, openKeyProvider } from '../../hsm';
import { runRewrap } from '../../appliance/keys/rewrap-job';
import { recordFirstMasterKeyVersion } from '../../appliance/keys/master-key-versions';
import { KeyRotationService } from '../../appliance/keys/rotation';
import { loadConfig } from '../../appliance/platform/config';
import { openDatabase, type Database } from '../../appliance/platform/database';
import { logger } from '../../appliance/platform/logger';
import { migrate } from '../../appliance/platform/migrations';
import type { BenchResult } from './result';

export interface RewrapBenchOptions {
  /** Wrapped data keys to move (default 10000). */
  dataKeys?: number;
  /** Data keys per SQLite write transaction (default 200, the job's default). */
  batchSize?: number;
}

/** RFC 3394 default initial value, which `id-aes256-wrap` requires as its IV. */
const rfc3394Iv = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

export async function runRewrapBench(options: RewrapBenchOptions = {}): Promise<BenchResult> {
  const count = options.dataKeys ?? 10_000;
  const batchSize = options.batchSize ?? 200;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-rewrap-'));
  const config = loadConfig({ APPLIANCE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });

  const previousLevel = logger.level;
  logger.level = 'warn';

  await ensureToken(config);
  const keys = openKeyProvider(config);
  const database = await openDatabase(config.databaseFile);
  try {
    await migrate(database);
    await recordFirstMasterKeyVersion(database, keys);
    const dataKeys = Array.from({ length: count }, () => crypto.randomBytes(32));
    await seed(database, dataKeys, (dataKey) => keys.wrapDataKey(dataKey));

    // Ours: rotate, then time the rewrap job until every data key moved.
    const rotation = new KeyRotationService(database, keys);
    const record = await rotation.rotate({ trigger: 'cli', actor: 'bench' }, (work) =>
      database.write(work),
    );
    const oursStart = process.hrtime.bigint();
    const finished = await runRewrap(database, keys, record.id, { batchSize });
    const oursMs = Number(process.hrtime.bigint() - oursStart) / 1e6;
    if (finished.state !== 'completed' || finished.done !== count) {
      throw new Error(`rewrap ended ${finished.state} with ${finished.done} of ${count} moved`);
    }
    await checkSample(database, dataKeys, (wrapped) => keys.unwrapDataKey(wrapped, record.keyUri));

    // Peer: the same data keys, wrapped and rewrapped with Node's AES key wrap.
    const oldKek = crypto.randomBytes(32);
    const newKek = crypto.randomBytes(32);
    const peerWrapped = dataKeys.map((dataKey) => nodeWrap(oldKek, dataKey));
    const peerStart = process.hrtime.bigint();
    const peerRewrapped = peerWrapped.map((wrapped) =>
      nodeWrap(newKek, nodeUnwrap(oldKek, wrapped)),
    );
    const peerMs = Number(process.hrtime.bigint() - peerStart) / 1e6;
    if (!nodeUnwrap(newKek, peerRewrapped[0]).equals(dataKeys[0])) {
      throw new Error('the peer rewrap did not round-trip');
    }

    const ours = (count * 1000) / oursMs;
    const peer = (count * 1000) / peerMs;
    return {
      name: 'keys.master.rewrap',
      ours,
      peer,
      ratio: ours / peer,
      unit: 'data keys/s',
      details: {
        ours: 'rewrap job: C_UnwrapKey + C_WrapKey (CKM_AES_KEY_WRAP) in SoftHSM, SQLite batches with cursor',
        peer: "Node crypto 'id-aes256-wrap' unwrap + wrap in memory, no database",
        dataKeys: count,
        batchSize,
        elapsedMs: { ours: Math.round(oursMs), peer: Math.round(peerMs) },
      },
    };
  } finally {
    await database.close();
    keys.close();
    logger.level = previousLevel;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Inserts one placeholder prompt per data key and the wrapped key under
 * master key version 1. The prompt rows carry random bytes in place of
 * sealed content, because the rewrap never reads prompt content.
 */
async function seed(
  database: Database,
  dataKeys: Buffer[],
  wrap: (dataKey: Buffer) => Buffer,
): Promise<void> {
  const now = new Date().toISOString();
  await database.write(async (transaction) => {
    for (const [index, dataKey] of dataKeys.entries()) {
      const id = crypto.randomUUID();
      await database.sequelize.query(
        `INSERT INTO prompts (id, folder_id, key_version, title_sealed, description_sealed, tags_sealed,
           latest_version, archived, archived_at, created_by, created_at, updated_at)
         VALUES (:id, NULL, 1, :blob, NULL, :blob, 1, 0, NULL, 'bench', :now, :now)`,
        { transaction, replacements: { id, blob: crypto.randomBytes(16), now } },
      );
      await database.sequelize.query(
        `INSERT INTO prompt_data_keys (prompt_id, key_version, wrapped_key, wrap_mechanism, master_key_uri,
           master_key_version, created_at)
         VALUES (:id, 1, :wrapped, 'CKM_AES_KEY_WRAP', 'bench', 1, :now)`,
        { transaction, replacements: { id, wrapped: wrap(dataKey), now } },
      );
      dataKeyIndex.set(id, index);
    }
  });
}

/** Position of each seeded prompt's data key in the bench's array. */
const dataKeyIndex = new Map<string, number>();

/** Unwraps 100 moved keys under the new version and compares them with the originals. */
async function checkSample(
  database: Database,
  dataKeys: Buffer[],
  unwrap: (wrapped: Buffer) => Buffer,
): Promise<void> {
  const rows = await database.sequelize.query<{ prompt_id: string; wrapped_key: Buffer }>(
    'SELECT prompt_id, wrapped_key FROM prompt_data_keys ORDER BY RANDOM() LIMIT 100',
    { type: QueryTypes.SELECT },
  );
  for (const row of rows) {
    const expected = dataKeys[dataKeyIndex.get(row.prompt_id)!];
    if (!unwrap(Buffer.from(row.wrapped_key)).equals(expected)) {
      throw new Error(`the data key of ${row.prompt_id} changed during the rewrap`);
    }
  }
}

function nodeWrap(kek: Buffer, dataKey: Buffer): Buffer {
  const cipher = crypto.createCipheriv('id-aes256-wrap', kek, rfc3394Iv);
  return Buffer.concat([cipher.update(dataKey), cipher.final()]);
}

function nodeUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  const decipher = crypto.createDecipheriv('id-aes256-wrap', kek, rfc3394Iv);
  return Buffer.concat([decipher.update(wrapped), decipher.final()]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const dataKeys = process.argv[2] ? Number(process.argv[2]) : undefined;
  if (dataKeys !== undefined && !(Number.isInteger(dataKeys) && dataKeys > 0)) {
    console.error(
      `Invalid dataKeys ${JSON.stringify(process.argv[2])}: expected a positive whole number.`,
    );
    process.exit(2);
  }
  console.log(JSON.stringify(await runRewrapBench({ dataKeys }), null, 2));
}
