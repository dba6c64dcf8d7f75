import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import readline from 'node:readline';

import type { EcsEvent } from './ecs.js';
import { parseAuthLogLine } from './parsers/auth-log.js';
import type { Pipeline } from './pipeline.js';

/**
 * Reads an auth log (a file or stdin) line by line, parses each line to ECS
 * and submits the events to the pipeline. Lines without a syslog header are
 * counted and appended to the rejected-lines file with the reason; they
 * never stop the run. Whitespace-only lines are skipped without a report.
 */

export interface IngestReport {
  lines: number;
  events: number;
  rejected: number;
  rejectedFile?: string;
}

export interface IngestOptions {
  input: NodeJS.ReadableStream;
  sourceName: string;
  pipeline: Pipeline;
  /** Appended: one JSON line per malformed line {line, reason, text, source}. */
  rejectedFile: string;
  /** Year of year-less syslog stamps; inferred from `now` when absent. */
  year?: number;
  now?: Date;
  /** Events per submit (one spool fsync each). Default 500. */
  submitBatch?: number;
}

/** Longest line parsed; a longer one is rejected, and `text` in the rejected file is cut to it. */
export const maxLineLength = 16 * 1024;

/**
 * Deterministic id of the `index`-th event of a line: SHA-256 over the
 * source name, the 1-based line number and the line without its terminator,
 * so a replay of the same file yields the same ids (CRLF or LF alike).
 */
export function logLineEventId(
  sourceName: string,
  lineNumber: number,
  raw: string,
  index: number,
): string {
  return createHash('sha256')
    .update(`${sourceName}\0${lineNumber}\0${index}\0${raw}`)
    .digest('hex');
}

export async function ingestStream(options: IngestOptions): Promise<IngestReport> {
  const submitBatch = options.submitBatch ?? 500;
  const report: IngestReport = { lines: 0, events: 0, rejected: 0 };
  let pending: EcsEvent[] = [];
  let rejectedLines: string[] = [];

  const flush = async () => {
    if (rejectedLines.length > 0) {
      await appendDurably(options.rejectedFile, rejectedLines);
      report.rejectedFile = options.rejectedFile;
      rejectedLines = [];
    }
    if (pending.length > 0) {
      await options.pipeline.submit(pending);
      report.events += pending.length;
      pending = [];
    }
  };

  // crlfDelay: Infinity makes \r\n one line break whatever the chunk boundaries.
  const lines = readline.createInterface({ input: options.input, crlfDelay: Infinity });
  for await (const raw of lines) {
    report.lines += 1;
    const lineNumber = report.lines;
    if (raw.trim() === '') continue;

    const reject = (reason: string) => {
      report.rejected += 1;
      rejectedLines.push(
        JSON.stringify({
          line: lineNumber,
          reason,
          text: raw.slice(0, maxLineLength),
          source: options.sourceName,
        }),
      );
    };

    if (raw.length > maxLineLength) {
      reject(`line longer than ${maxLineLength} characters`);
      continue;
    }

    const parsed = parseAuthLogLine(raw, {
      year: options.year,
      now: options.now,
      filePath: options.sourceName,
    });
    if (!parsed.ok) {
      reject(parsed.reason);
      continue;
    }

    parsed.events.forEach((event, index) => {
      event.event.id = logLineEventId(options.sourceName, lineNumber, raw, index);
      pending.push(event);
    });
    if (pending.length >= submitBatch || rejectedLines.length >= submitBatch) await flush();
  }

  await flush();
  return report;
}

/** Appends lines to `file` (created 0600) and fsyncs, so a reported rejection is on disk. */
async function appendDurably(file: string, lines: string[]): Promise<void> {
  const handle = await fs.open(file, 'a', 0o600);
  try {
    await handle.write(lines.join('\n') + '\n');
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
