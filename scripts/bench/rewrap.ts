/**
 * Rewrap benchmarks. `keys.master.rewrap` measures the rewrap job moving
 * data keys from master key version 1 to version 2: unwrap and wrap inside
 * SoftHSM, in batches of SQLite write transactions with their cursor. Its
 * peer is Node's own RFC 3394 key wrap (`id-aes256-wrap`) of the same keys
 * in memory. `keys.tenant.rewrap`: the same job moving one project's data
 * keys between two tenant key versions, which the token keeps as session
 * objects. `keys.master.rotate.tenant-layer`: how many
 * data keys per second a master key rotation re-protects when they sit
 * under a tenant key, against the direct rewrap rate of the same run.
 *
 *   node --import tsx scripts/bench/rewrap.ts [dataKeys]   prints JSON
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { QueryTypes, type Transaction } from 'sequelize';

import { ensureToken, openKeyProvider } from '../../hsm';
import type { WrappedTenantKey } from '../../hsm/key-provider';
import { runRewrap } from '../../appliance/keys/rewrap-job';
import { recordFirstMasterKeyVersion } from '../../appliance/keys/master-key-versions';
import { KeyRotationService } from '../../appliance/keys/rotation';
import { loadConfig } from '../../appliance/platform/config';
import { openDatabase, type Database } from '../../appliance/platform/database';
import { logger } from '../../appliance/platform/logger';
import { migrate } from '../../appliance/platform/migrations';
import { openTenants } from '../../appliance/tenants';
import type { BenchResult } from './result';

export interface RewrapBenchOptions {
  /** Wrapped data keys to move (default 10000). */
  dataKeys?: number;
  /** Data keys per SQLite write transaction (default 200, the job's default). */
  batchSize?: number;
}

/** Operator of the benchmark's rotations, as their records name it. */
const benchOperator = { trigger: 'cli', actor: 'bench' } as const;

/** RFC 3394 default initial value, which `id-aes256-wrap` requires as its IV. */
const rfc3394Iv = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

export async function runRewrapBench(options: RewrapBenchOptions = {}): Promise<BenchResult> {
  const count = options.dataKeys ?? 10_000;
  const batchSize = options.batchSize ?? 200;
  const bench = await openBenchStore('bench-rewrap-');
  const { database, keys } = bench;
  try {
    const dataKeys = Array.from({ length: count }, () => crypto.randomBytes(32));
    await seed(database, dataKeys, (dataKey) => keys.wrapDataKey(dataKey));

    // Ours: rotate, then time the rewrap job until every data key moved.
    const rotation = new KeyRotationService(database, keys);
    const record = await rotation.rotate(benchOperator, (work) => database.write(work));
    const oursStart = process.hrtime.bigint();
    const finished = await runRewrap(database, keys, record.id, { batchSize });
    const oursMs = Number(process.hrtime.bigint() - oursStart) / 1e6;
    if (finished.state !== 'completed' || finished.done !== count) {
      throw new Error(`rewrap ended ${finished.state} with ${finished.done} of ${count} moved`);
    }
    await checkSample(database, dataKeys, (wrapped) => keys.unwrapDataKey(wrapped, record.keyUri));

    // Peer: the same data keys, wrapped and rewrapped with Node's AES key wrap.
    const peerMs = nodeRewrapMs(dataKeys);

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
    await bench.close();
  }
}

/**
 * Inserts one placeholder prompt per data key and its wrapped key: under
 * master key version 1 in prompt_data_keys, or under version 1 of the
 * project's tenant key in project_data_keys. The prompt rows carry random
 * bytes in place of sealed content, because a rewrap never reads prompt content.
 */
async function seed(
  database: Database,
  dataKeys: Buffer[],
  wrap: (dataKey: Buffer) => Buffer,
  project?: { projectId: string; keyUri: string },
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
      const sql = project
        ? `INSERT INTO project_data_keys (prompt_id, key_version, project_id, wrapped_key, wrap_mechanism,
             tenant_key_uri, tenant_key_version, created_at)
           VALUES (:id, 1, :projectId, :wrapped, 'CKM_AES_KEY_WRAP', :keyUri, 1, :now)`
        : `INSERT INTO prompt_data_keys (prompt_id, key_version, wrapped_key, wrap_mechanism, master_key_uri,
             master_key_version, created_at)
           VALUES (:id, 1, :wrapped, 'CKM_AES_KEY_WRAP', 'bench', 1, :now)`;
      await database.sequelize.query(sql, {
        transaction,
        replacements: { id, wrapped: wrap(dataKey), now, ...project },
      });
      dataKeyIndex.set(id, index);
    }
  });
}

/**
 * Runs the tenant benchmarks on `count` data keys of one appliance-keyed
 * project: the tenant key rotation's rewrap, then a master key rotation,
 * which rewraps the project's tenant key versions and none of its data
 * keys. `directRate` is the master rewrap rate of data keys wrapped by the
 * master key directly, measured by runRewrapBench() in the same run.
 */
export async function runTenantRewrapBench(
  options: RewrapBenchOptions & { directRate: number },
): Promise<BenchResult[]> {
  const count = options.dataKeys ?? 10_000;
  const batchSize = options.batchSize ?? 200;
  const bench = await openBenchStore('bench-tenant-rewrap-');
  const { config, database, keys } = bench;
  const commit = <T>(work: (transaction: Transaction) => Promise<T>) => database.write(work);
  let tenants: Awaited<ReturnType<typeof openTenants>> | undefined;
  try {
    tenants = await openTenants(config, database, keys, undefined, { resume: false });
    const project = await tenants.projects.create(
      { name: 'bench', keyMode: 'appliance' },
      'bench',
      commit,
    );
    const dataKeys = Array.from({ length: count }, () => crypto.randomBytes(32));
    const firstKey = await tenantKeyVersion(database, project.id, 1);
    await seed(database, dataKeys, (dataKey) => keys.wrapDataKeyUnder(firstKey, dataKey), {
      projectId: project.id,
      keyUri: project.keyUri,
    });

    // Ours: rotate the tenant key, then time its rewrap job.
    const record = await tenants.rotation.rotate(project.id, benchOperator, commit);
    const tenantStart = process.hrtime.bigint();
    const finished = await tenants.rotation.rewrap(record.id, { batchSize });
    const tenantMs = Number(process.hrtime.bigint() - tenantStart) / 1e6;
    if (finished.state !== 'completed' || finished.done !== count) {
      throw new Error(
        `tenant rewrap ended ${finished.state} with ${finished.done} of ${count} moved`,
      );
    }
    const secondKey = await tenantKeyVersion(database, project.id, 2);
    await checkSample(database, dataKeys, (wrapped) => keys.unwrapDataKeyUnder(secondKey, wrapped));

    // Peer of the tenant rewrap: Node's key wrap of the same keys in memory.
    const peerMs = nodeRewrapMs(dataKeys);

    // A master key rotation re-protects every data key by rewrapping the tenant key versions.
    const rotation = new KeyRotationService(database, keys);
    const masterStart = process.hrtime.bigint();
    const master = await rotation.rotate(benchOperator, commit);
    const masterDone = await runRewrap(database, keys, master.id, { batchSize });
    const masterMs = Number(process.hrtime.bigint() - masterStart) / 1e6;
    if (masterDone.state !== 'completed')
      throw new Error(`master rewrap ended ${masterDone.state}`);
    const movedKey = await tenantKeyVersion(database, project.id, 2);
    if (movedKey.masterKeyUri !== master.keyUri) {
      throw new Error('the master key rotation left the tenant key under the old version');
    }
    await checkSample(database, dataKeys, (wrapped) => keys.unwrapDataKeyUnder(movedKey, wrapped));

    const tenantRate = (count * 1000) / tenantMs;
    const peerRate = (count * 1000) / peerMs;
    const layerRate = (count * 1000) / masterMs;
    return [
      {
        name: 'keys.tenant.rewrap',
        ours: tenantRate,
        peer: peerRate,
        ratio: tenantRate / peerRate,
        unit: 'data keys/s',
        details: {
          ours: 'tenant key rotation: C_UnwrapKey + C_WrapKey under two tenant key session objects, SQLite batches with cursor',
          peer: "Node crypto 'id-aes256-wrap' unwrap + wrap in memory, no database",
          dataKeys: count,
          batchSize,
          elapsedMs: { ours: Math.round(tenantMs), peer: Math.round(peerMs) },
        },
      },
      {
        name: 'keys.master.rotate.tenant-layer',
        ours: layerRate,
        peer: options.directRate,
        ratio: layerRate / options.directRate,
        unit: 'data keys/s',
        details: {
          ours: `master key rotation with ${count} data keys under one project's two tenant key versions: rotate, rewrap the tenant keys, complete`,
          peer: 'keys.master.rewrap of this run: the rewrap job on data keys wrapped by the master key directly',
          dataKeys: count,
          elapsedMs: { ours: Math.round(masterMs) },
        },
      },
    ];
  } finally {
    tenants?.close();
    await bench.close();
  }
}

/**
 * Opens a token, key provider and migrated SQLite file in a new temporary
 * directory, with logs at warn level until close() removes them all.
 */
async function openBenchStore(prefix: string) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const config = loadConfig({ APPLIANCE_DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
  const previousLevel = logger.level;
  logger.level = 'warn';

  await ensureToken(config);
  const keys = openKeyProvider(config);
  const database = await openDatabase(config.databaseFile);
  const close = async (): Promise<void> => {
    await database.close();
    keys.close();
    logger.level = previousLevel;
    fs.rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    await migrate(database);
    await recordFirstMasterKeyVersion(database, keys);
  } catch (error) {
    await close();
    throw error;
  }
  return { config, keys, database, close };
}

/** Reads tenant key version `version` of `projectId` as the key provider takes it. */
async function tenantKeyVersion(
  database: Database,
  projectId: string,
  version: number,
): Promise<WrappedTenantKey> {
  const [row] = await database.sequelize.query<{ wrapped_key: Buffer; master_key_uri: string }>(
    `SELECT wrapped_key, master_key_uri FROM project_key_versions
     WHERE project_id = :projectId AND version = :version`,
    { type: QueryTypes.SELECT, replacements: { projectId, version } },
  );
  return { wrapped: Buffer.from(row.wrapped_key), masterKeyUri: row.master_key_uri };
}

/** Times Node's own RFC 3394 rewrap of `dataKeys` between two random AES-256 keys. */
function nodeRewrapMs(dataKeys: Buffer[]): number {
  const oldKek = crypto.randomBytes(32);
  const newKek = crypto.randomBytes(32);
  const wrapped = dataKeys.map((dataKey) => nodeWrap(oldKek, dataKey));

  const start = process.hrtime.bigint();
  const rewrapped = wrapped.map((key) => nodeWrap(newKek, nodeUnwrap(oldKek, key)));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e6;

  if (!nodeUnwrap(newKek, rewrapped[0]).equals(dataKeys[0])) {
    throw new Error('the peer rewrap did not round-trip');
  }
  return elapsed;
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
    `SELECT prompt_id, wrapped_key FROM (SELECT prompt_id, wrapped_key FROM prompt_data_keys
       UNION ALL SELECT prompt_id, wrapped_key FROM project_data_keys) ORDER BY RANDOM() LIMIT 100`,
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
