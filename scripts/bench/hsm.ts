/**
 * HSM benchmark. It measures raw SoftHSM rates through graphene-pk11 against
 * Node's own crypto on the same data, then prompt reads and writes through
 * the vault service (no HTTP) with a cold and a warm data key cache. It also
 * records the event-loop delay while prompts are read, because every PKCS#11
 * call runs synchronously on the event loop thread. It uses a temporary
 * token and database of its own, and each phase is bounded by a count and a
 * duration.
 *
 *   node --import tsx scripts/bench/hsm.ts   prints JSON
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

import type { Session } from 'graphene-pk11';

import { gcmEncrypt, generateGcmKey } from '../../hsm/aes-gcm';
import { Pkcs11KeyProvider } from '../../hsm/pkcs11-key-provider';
import { createCapturingLogger, createTestTokenDir } from '../../hsm/test-support';
import { ensureToken } from '../../hsm/token-setup';
import { openDatabase, type Database } from '../../appliance/platform/database';
import { logger } from '../../appliance/platform/logger';
import { migrate } from '../../appliance/platform/migrations';
import { recordFirstMasterKeyVersion } from '../../appliance/keys/master-key-versions';
import { createVault, type Vault } from '../../appliance/vault/vault';
import type { BenchResult } from './result';

export interface HsmBenchOptions {
  /** Maximum operations per measured phase (default 20000). */
  maxOps?: number;
  /** Milliseconds each measured phase may run (default 2000). */
  durationMs?: number;
  /** Prompts read while the event-loop delay is recorded (default 2000). */
  loopReads?: number;
}

/** Size of the data encrypted per operation and of each prompt body, in bytes. */
const payloadBytes = 2048;

/** Actor id recorded as creator of the benchmark's prompts. */
const benchActor = 'bench';

/** RFC 3394 default initial value, which `id-aes256-wrap` requires as its IV. */
const rfc3394Iv = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

interface Rate {
  ops: number;
  elapsedMs: number;
  perSecond: number;
}

export async function runHsmBench(options: HsmBenchOptions = {}): Promise<BenchResult[]> {
  const limits = {
    maxOps: options.maxOps ?? 20_000,
    durationMs: options.durationMs ?? 2000,
    loopReads: options.loopReads ?? 2000,
  };
  const token = createTestTokenDir('bench-hsm');
  const quiet = { logger: createCapturingLogger().logger };
  const previousLevel = logger.level;
  logger.level = 'warn';

  ensureToken({ hsm: token.hsm }, quiet);
  const keys = Pkcs11KeyProvider.open(token.hsm, quiet);
  const database = await openDatabase(path.join(token.dir, 'bench.sqlite'));
  try {
    const raw = rawRates(keys, limits);
    const vault = await vaultRates(database, keys, limits);
    const loop = await loopDelay(database, keys, vault.ids, limits.loopReads);

    const results: BenchResult[] = [
      pair('hsm.aes-gcm.encrypt', raw.gcm, 'CKM_AES_GCM, 2 KiB, 12-byte IV', 'Node aes-256-gcm'),
      pair('hsm.key.wrap', raw.wrap, 'CKM_AES_KEY_WRAP of a 32-byte key', 'Node id-aes256-wrap'),
      pair('hsm.key.unwrap', raw.unwrap, 'CKM_AES_KEY_WRAP unwrap and read', 'Node id-aes256-wrap'),
      pair(
        'hsm.ecdsa.sign',
        raw.sign,
        'CKM_ECDSA P-256 over a SHA-256 digest',
        'Node crypto.sign P-256',
      ),
    ];
    for (const [name, rate] of Object.entries(vault.rates)) {
      results.push({
        name: `hsm.vault.${name}`,
        ours: rate.perSecond,
        peer: raw.unwrap.ours.perSecond,
        ratio: rate.perSecond / raw.unwrap.ours.perSecond,
        unit: 'ops/s',
        details: {
          ours: 'vault service, no HTTP, SQLite in a temporary file',
          peer: 'raw SoftHSM unwrap rate of this run',
          ofNodeAesGcm: rate.perSecond / raw.gcm.peer.perSecond,
          ops: rate.ops,
          elapsedMs: Math.round(rate.elapsedMs),
        },
      });
    }
    results.push({
      name: 'hsm.loop.delay.p99',
      ours: loop.cold.p99,
      peer: loop.warm.p99,
      ratio: loop.cold.p99 / loop.warm.p99,
      unit: 'ms',
      details: { ours: 'cold data key cache', peer: 'warm data key cache', ...loop },
    });
    return results;
  } finally {
    await database.close();
    keys.close();
    logger.level = previousLevel;
    token.remove();
  }
}

interface RatePair {
  ours: Rate;
  peer: Rate;
}

/** Raw token operations against Node's OpenSSL on the same inputs. */
function rawRates(keys: Pkcs11KeyProvider, limits: { maxOps: number; durationMs: number }) {
  const session = (keys as unknown as { session: Session }).session;
  const gcmKey = generateGcmKey(session);
  const nodeKey = crypto.randomBytes(32);
  const data = crypto.randomBytes(payloadBytes);
  const iv = crypto.randomBytes(12);
  const dataKey = crypto.randomBytes(32);
  const wrapped = keys.wrapDataKey(dataKey);
  const nodeWrapped = nodeWrap(nodeKey, dataKey);
  const digest = crypto.createHash('sha256').update(data).digest();
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });

  try {
    return {
      gcm: {
        ours: measure(() => gcmEncrypt(session, { key: gcmKey, iv }, data), limits),
        peer: measure(() => nodeGcm(nodeKey, iv, data), limits),
      },
      wrap: {
        ours: measure(() => keys.wrapDataKey(dataKey), limits),
        peer: measure(() => nodeWrap(nodeKey, dataKey), limits),
      },
      unwrap: {
        ours: measure(() => keys.unwrapDataKey(wrapped), limits),
        peer: measure(() => nodeUnwrap(nodeKey, nodeWrapped), limits),
      },
      sign: {
        ours: measure(() => keys.signDigest(digest), limits),
        // Node hashes its input first; hashing 32 bytes costs well under 1 % of a signature.
        peer: measure(() => crypto.sign('sha256', digest, privateKey), limits),
      },
    } satisfies Record<string, RatePair>;
  } finally {
    session.destroy(gcmKey);
  }
}

/** Prompt writes and reads through the vault service, cold cache (one entry, cycled) and warm. */
async function vaultRates(
  database: Database,
  keys: Pkcs11KeyProvider,
  limits: { maxOps: number; durationMs: number },
): Promise<{ ids: string[]; rates: Record<string, Rate> }> {
  await migrate(database);
  await recordFirstMasterKeyVersion(database, keys);
  const body = 'Summarise the customer ticket below in three bullet points. '
    .repeat(64)
    .slice(0, payloadBytes);

  const writer = createVault(database, keys);
  const ids: string[] = [];
  const write = await measureAsync(async () => {
    const prompt = await writer.createPrompt(
      { title: `Bench prompt ${ids.length}`, body, tags: ['bench'] },
      benchActor,
      (work) => database.write(work),
    );
    ids.push(prompt.id);
  }, limits);
  writer.close();

  // The warm set fits the default cache of 1,024 keys; the cold vault caches one key and cycles through all.
  const warmIds = ids.slice(0, 1000);
  const cold = createVault(database, keys, { dataKeyCache: { maxEntries: 1 } });
  const warm = createVault(database, keys);
  try {
    for (const id of warmIds) await warm.getPrompt(id);
    return {
      ids,
      rates: {
        'prompt.write': write,
        'prompt.read.cold': await measureAsync(reader(cold, ids), limits),
        'prompt.read.warm': await measureAsync(reader(warm, warmIds), limits),
      },
    };
  } finally {
    cold.close();
    warm.close();
  }
}

/** Event-loop delay in milliseconds while reading `reads` prompts with a cold and with a warm cache. */
async function loopDelay(
  database: Database,
  keys: Pkcs11KeyProvider,
  ids: string[],
  reads: number,
) {
  const run = async (vault: Vault, cycle: string[]) => {
    const read = reader(vault, cycle);
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    for (let i = 0; i < reads; i++) await read();
    histogram.disable();
    vault.close();
    const ms = (ns: number) => ns / 1e6;
    return {
      reads,
      p50: ms(histogram.percentile(50)),
      p99: ms(histogram.percentile(99)),
      max: ms(histogram.max),
    };
  };

  const warmIds = ids.slice(0, 1000);
  const warm = createVault(database, keys);
  for (const id of warmIds) await warm.getPrompt(id);
  return {
    cold: await run(createVault(database, keys, { dataKeyCache: { maxEntries: 1 } }), ids),
    warm: await run(warm, warmIds),
  };
}

/** Returns a read that opens the next prompt of `ids` in turn. */
function reader(vault: Vault, ids: string[]): () => Promise<void> {
  let next = 0;
  return async () => {
    await vault.getPrompt(ids[next++ % ids.length]);
  };
}

async function measureAsync(
  operation: () => Promise<unknown>,
  limits: { maxOps: number; durationMs: number },
): Promise<Rate> {
  const started = performance.now();
  const deadline = started + limits.durationMs;
  let ops = 0;
  while (ops < limits.maxOps && performance.now() < deadline) {
    await operation();
    ops += 1;
  }
  const elapsedMs = performance.now() - started;
  return { ops, elapsedMs, perSecond: (ops * 1000) / elapsedMs };
}

function measure(operation: () => unknown, limits: { maxOps: number; durationMs: number }): Rate {
  for (let i = 0; i < 50; i++) operation();

  const started = performance.now();
  const deadline = started + limits.durationMs;
  let ops = 0;
  while (ops < limits.maxOps && performance.now() < deadline) {
    operation();
    ops += 1;
  }
  const elapsedMs = performance.now() - started;
  return { ops, elapsedMs, perSecond: (ops * 1000) / elapsedMs };
}

function pair(name: string, rates: RatePair, ours: string, peer: string): BenchResult {
  return {
    name,
    ours: rates.ours.perSecond,
    peer: rates.peer.perSecond,
    ratio: rates.ours.perSecond / rates.peer.perSecond,
    unit: 'ops/s',
    details: {
      ours: `SoftHSM 2.6.1 through graphene-pk11: ${ours}`,
      peer,
      ops: { ours: rates.ours.ops, peer: rates.peer.ops },
      elapsedMs: { ours: Math.round(rates.ours.elapsedMs), peer: Math.round(rates.peer.elapsedMs) },
    },
  };
}

function nodeGcm(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const cipher = crypto.createCipheriv('aes-256-gcm', key, iv);
  return Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()]);
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
  console.log(JSON.stringify(await runHsmBench(), null, 2));
}
