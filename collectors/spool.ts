import fs from 'node:fs/promises';
import path from 'node:path';

/**
 * Durable on-disk queue of JSON records between the collectors and the
 * search engine.
 *
 * Layout of the spool directory:
 * - `segment-<first seq>.jsonl`: one `{"seq":N,"record":...}` JSON line per
 *   record. A segment is rolled once it passes `segmentBytes`, and every
 *   open starts a new one, so a segment is never appended to after a crash.
 * - `committed.json`: `{"seq":N}`, the highest sequence number acknowledged.
 *   It is replaced atomically (write, fsync, rename, fsync of the directory).
 *
 * `append` resolves only after the lines are fsynced, so a resolved append
 * survives a crash. A line that does not parse is skipped and listed in
 * `corruptLines`, so neither the torn tail of an append that a crash
 * interrupted nor a damaged disk block stops the spool.
 */

export interface SpoolEntry<T> {
  /** Position in the spool. It increases with every append and is not reused while the record is pending. */
  seq: number;
  record: T;
}

/** A line that was skipped because it is not a complete spool record. */
export interface CorruptLine {
  segment: string;
  /** Byte offset of the line in the segment. */
  offset: number;
  bytes: number;
  reason: string;
}

export interface SpoolOptions {
  /** Size in bytes after which appends go to a new segment. Default 16 MiB. */
  segmentBytes?: number;
  /** Called once per skipped line, when it is found. */
  onCorruptLine?: (line: CorruptLine) => void;
}

interface Segment {
  file: string;
  firstSeq: number;
  /** Highest seq written to the segment so far; 0 while empty. */
  lastSeq: number;
  bytes: number;
}

const segmentPattern = /^segment-(\d{16})\.jsonl$/;
const committedFile = 'committed.json';
const readChunkBytes = 1024 * 1024;

function segmentName(firstSeq: number): string {
  return `segment-${String(firstSeq).padStart(16, '0')}.jsonl`;
}

async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Returns the record of a spool line, or why the line is not one. */
function parseLine<T>(
  text: string,
): { ok: true; entry: SpoolEntry<T> } | { ok: false; reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, reason: `invalid JSON: ${(error as Error).message}` };
  }

  const entry = value as Partial<SpoolEntry<T>> | null;
  if (
    entry === null ||
    typeof entry !== 'object' ||
    !Number.isSafeInteger(entry.seq) ||
    !('record' in entry)
  ) {
    return { ok: false, reason: 'JSON line without "seq" and "record"' };
  }
  return { ok: true, entry: entry as SpoolEntry<T> };
}

export class Spool<T> {
  /** Lines skipped since the spool was opened. */
  readonly corruptLines: CorruptLine[] = [];

  private readonly segments: Segment[] = [];
  private active?: { segment: Segment; handle: fs.FileHandle };
  private committedSeq = 0;
  private nextSeq = 1;
  /** Highest seq whose append has resolved. */
  private appendedSeq = 0;
  private pendingCount = 0;
  /** Read position of `read`: a segment index and a byte offset in that segment. */
  private cursor = { segmentIndex: 0, offset: 0 };
  /** Serialises appends, acknowledgements and segment removal. */
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly dir: string,
    private readonly options: SpoolOptions,
  ) {}

  /**
   * Opens the spool in `dir` (created with mode 0700), scanning every
   * segment to count the pending records and to find skipped lines.
   */
  static async open<T>(dir: string, options: SpoolOptions = {}): Promise<Spool<T>> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await fs.chmod(dir, 0o700);

    const spool = new Spool<T>(dir, options);
    await spool.load();
    return spool;
  }

  /** Records appended and not yet acknowledged. */
  get pending(): number {
    return this.pendingCount;
  }

  /** Highest sequence number acknowledged. */
  get committed(): number {
    return this.committedSeq;
  }

  /** Highest sequence number whose append has resolved. */
  get lastSeq(): number {
    return this.appendedSeq;
  }

  /** Appends records; resolves once they are on disk (fsync). */
  append(records: T[]): Promise<SpoolEntry<T>[]> {
    return this.serialise(async () => {
      if (records.length === 0) return [];

      const entries = records.map((record) => ({ seq: this.nextSeq++, record }));
      const text = entries.map((entry) => JSON.stringify(entry)).join('\n') + '\n';
      const bytes = Buffer.from(text, 'utf8');

      const active = await this.activeSegment(bytes.length);
      try {
        await active.handle.write(bytes);
        await active.handle.datasync();
      } catch (error) {
        // Part of the text may be on disk; later appends go to a new segment so that part stays one torn line.
        active.segment.bytes = (await fs.stat(active.segment.file)).size;
        active.segment.lastSeq = entries[entries.length - 1]!.seq;
        await active.handle.close().catch(() => undefined);
        this.active = undefined;
        throw error;
      }

      active.segment.lastSeq = entries[entries.length - 1]!.seq;
      this.appendedSeq = active.segment.lastSeq;
      active.segment.bytes += bytes.length;
      this.pendingCount += entries.length;
      return entries;
    });
  }

  /**
   * Returns up to `max` records after the ones returned before, oldest first,
   * without acknowledging them. Skips corrupt lines.
   */
  async read(max: number): Promise<SpoolEntry<T>[]> {
    const entries: SpoolEntry<T>[] = [];

    while (entries.length < max && this.cursor.segmentIndex < this.segments.length) {
      const segment = this.segments[this.cursor.segmentIndex]!;
      const isActive = this.active?.segment === segment;
      const found = await this.readSegment(
        segment,
        this.cursor.offset,
        max - entries.length,
        !isActive,
      );

      for (const entry of found.entries) {
        if (entry.seq > this.committedSeq) entries.push(entry);
      }
      this.cursor.offset = found.offset;

      if (found.offset < segment.bytes || isActive) break;
      this.cursor = { segmentIndex: this.cursor.segmentIndex + 1, offset: 0 };
    }
    return entries;
  }

  /**
   * Acknowledges every record up to and including `entries`' last one, which
   * must be the oldest records still pending. Removes segments that hold
   * only acknowledged records.
   */
  acknowledge(entries: SpoolEntry<T>[]): Promise<void> {
    return this.serialise(async () => {
      if (entries.length === 0) return;

      const seq = entries[entries.length - 1]!.seq;
      if (seq <= this.committedSeq) return;

      await this.writeCommitted(seq);
      this.committedSeq = seq;
      this.pendingCount = Math.max(0, this.pendingCount - entries.length);
      await this.removeAcknowledgedSegments();
    });
  }

  /** Forgets what `read` returned, so the next read starts after the last acknowledged record. */
  rewind(): void {
    this.cursor = { segmentIndex: 0, offset: 0 };
  }

  async close(): Promise<void> {
    await this.serialise(async () => {
      await this.active?.handle.close();
      this.active = undefined;
    });
  }

  private serialise<R>(step: () => Promise<R>): Promise<R> {
    const result = this.queue.then(step);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async load(): Promise<void> {
    this.committedSeq = await this.readCommitted();

    const names = (await fs.readdir(this.dir)).filter((name) => segmentPattern.test(name)).sort();
    let lastSeq = this.committedSeq;
    for (const name of names) {
      const segment: Segment = {
        file: path.join(this.dir, name),
        firstSeq: Number(segmentPattern.exec(name)![1]),
        lastSeq: 0,
        bytes: (await fs.stat(path.join(this.dir, name))).size,
      };

      const scan = await this.readSegment(segment, 0, Number.POSITIVE_INFINITY, true);
      for (const entry of scan.entries) {
        segment.lastSeq = Math.max(segment.lastSeq, entry.seq);
        if (entry.seq > this.committedSeq) this.pendingCount += 1;
      }
      lastSeq = Math.max(lastSeq, segment.lastSeq);
      this.segments.push(segment);
    }

    this.nextSeq = lastSeq + 1;
    this.appendedSeq = lastSeq;
    await this.removeAcknowledgedSegments();
  }

  /**
   * Parses complete lines of `segment` from byte `offset`. A last line
   * without its newline is reported as a torn append in a closed segment.
   * In the active segment it is left for the next read, because an append
   * may still be writing it.
   */
  private async readSegment(
    segment: Segment,
    offset: number,
    max: number,
    closed: boolean,
  ): Promise<{ entries: SpoolEntry<T>[]; offset: number }> {
    const entries: SpoolEntry<T>[] = [];
    const handle = await fs.open(segment.file, 'r');
    try {
      let position = offset;
      let carry = Buffer.alloc(0);
      let carryStart = offset;

      while (entries.length < max) {
        const chunk = Buffer.alloc(readChunkBytes);
        const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
        if (bytesRead === 0) break;
        position += bytesRead;

        const data =
          carry.length > 0
            ? Buffer.concat([carry, chunk.subarray(0, bytesRead)])
            : chunk.subarray(0, bytesRead);
        let lineStart = 0;
        let newline = data.indexOf(0x0a, lineStart);
        while (newline >= 0 && entries.length < max) {
          const lineOffset = carryStart + lineStart;
          const text = data.subarray(lineStart, newline).toString('utf8');
          const parsed = parseLine<T>(text);
          if (parsed.ok) entries.push(parsed.entry);
          else this.reportCorrupt(segment, lineOffset, newline - lineStart + 1, parsed.reason);

          lineStart = newline + 1;
          newline = data.indexOf(0x0a, lineStart);
        }

        carry = Buffer.from(data.subarray(lineStart));
        carryStart += lineStart;
        if (entries.length >= max) return { entries, offset: carryStart };
      }

      if (carry.length > 0 && closed) {
        this.reportCorrupt(segment, carryStart, carry.length, 'incomplete last line (torn write)');
        return { entries, offset: carryStart + carry.length };
      }
      return { entries, offset: carryStart };
    } finally {
      await handle.close();
    }
  }

  private reportCorrupt(segment: Segment, offset: number, bytes: number, reason: string): void {
    const name = path.basename(segment.file);
    if (this.corruptLines.some((line) => line.segment === name && line.offset === offset)) return;

    const line = { segment: name, offset, bytes, reason };
    this.corruptLines.push(line);
    this.options.onCorruptLine?.(line);
  }

  /** Returns the segment to append to, starting a new one when there is none or it is full. */
  private async activeSegment(
    incomingBytes: number,
  ): Promise<{ segment: Segment; handle: fs.FileHandle }> {
    const limit = this.options.segmentBytes ?? 16 * 1024 * 1024;
    if (
      this.active &&
      this.active.segment.bytes > 0 &&
      this.active.segment.bytes + incomingBytes > limit
    ) {
      await this.active.handle.close();
      this.active = undefined;
      await this.removeAcknowledgedSegments();
    }
    if (this.active) return this.active;

    const segment: Segment = {
      file: path.join(this.dir, segmentName(this.nextSeq)),
      firstSeq: this.nextSeq,
      lastSeq: 0,
      bytes: 0,
    };
    const handle = await fs.open(segment.file, 'a', 0o600);
    // The new file's directory entry must be durable before its records count as spooled.
    await fsyncDirectory(this.dir);

    this.segments.push(segment);
    this.active = { segment, handle };
    return this.active;
  }

  private async readCommitted(): Promise<number> {
    let text: string;
    try {
      text = await fs.readFile(path.join(this.dir, committedFile), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }

    let value: unknown;
    try {
      value = (JSON.parse(text) as { seq?: unknown } | null)?.seq;
    } catch {
      value = undefined;
    }
    if (!Number.isSafeInteger(value) || (value as number) < 0) {
      throw new Error(
        `Spool file ${path.join(this.dir, committedFile)} has no valid "seq"; expected {"seq": <integer>}.`,
      );
    }
    return value as number;
  }

  private async writeCommitted(seq: number): Promise<void> {
    const target = path.join(this.dir, committedFile);
    const temporary = `${target}.tmp`;
    const handle = await fs.open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify({ seq }) + '\n');
      await handle.datasync();
    } finally {
      await handle.close();
    }
    await fs.rename(temporary, target);
    await fsyncDirectory(this.dir);
  }

  /** Deletes closed segments whose records are all acknowledged (or that hold none). */
  private async removeAcknowledgedSegments(): Promise<void> {
    let removed = 0;
    while (removed < this.segments.length) {
      const segment = this.segments[removed]!;
      if (segment === this.active?.segment) break;
      if (segment.lastSeq > this.committedSeq) break;

      await fs.rm(segment.file, { force: true });
      removed += 1;
    }
    if (removed === 0) return;

    this.segments.splice(0, removed);
    // A cursor inside a removed segment was at its end, so it moves to the start of the next one.
    this.cursor =
      this.cursor.segmentIndex < removed
        ? { segmentIndex: 0, offset: 0 }
        : { segmentIndex: this.cursor.segmentIndex - removed, offset: this.cursor.offset };
    await fsyncDirectory(this.dir);
  }
}
