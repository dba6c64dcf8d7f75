/** Limits of the cache of unwrapped data keys. */
export interface DataKeyCacheOptions {
  /** Maximum number of keys held; the least recently used one leaves first. */
  maxEntries?: number;
  /** Milliseconds a key stays usable after it was unwrapped. */
  ttlMs?: number;
  /** Clock in milliseconds, replaceable in tests. */
  now?: () => number;
}

interface Entry {
  key: Buffer;
  expiresAt: number;
}

/**
 * Unwrapped prompt data keys, so that reads do not call the HSM each time.
 * Bounded by count and by age. An evicted key is dropped but not zeroed,
 * because a request that fetched it before the eviction may still use it.
 * Only `clear`, which runs when the vault closes, zeroes the keys.
 */
export class DataKeyCache {
  readonly maxEntries: number;
  readonly ttlMs: number;

  private readonly entries = new Map<string, Entry>();
  private readonly now: () => number;

  constructor(options: DataKeyCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? 1024;
    this.ttlMs = options.ttlMs ?? 5 * 60_000;
    this.now = options.now ?? Date.now;

    if (!Number.isInteger(this.maxEntries) || this.maxEntries < 1) {
      throw new RangeError(
        `maxEntries must be a whole number of at least 1, got ${this.maxEntries}.`,
      );
    }
    if (!Number.isFinite(this.ttlMs) || this.ttlMs <= 0) {
      throw new RangeError(`ttlMs must be a positive number of milliseconds, got ${this.ttlMs}.`);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  get(id: string): Buffer | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;

    if (entry.expiresAt <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }

    // Map keeps insertion order, so re-inserting marks the entry as most recently used.
    this.entries.delete(id);
    this.entries.set(id, entry);
    return entry.key;
  }

  set(id: string, key: Buffer): void {
    this.entries.delete(id);
    this.entries.set(id, { key, expiresAt: this.now() + this.ttlMs });

    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** Zeroes and drops every key. */
  clear(): void {
    for (const entry of this.entries.values()) entry.key.fill(0);
    this.entries.clear();
  }
}
