import fs from 'node:fs';
import path from 'node:path';

import type { Command } from 'commander';

import { ingestStream, type IngestReport } from '../../collectors/file-collector';
import { createPipeline } from '../../collectors/pipeline';
import { connectSearchEngine } from '../../collectors/search/connect';
import { withIngestTimestamp } from '../detection/ingest-time';
import { loadConfig } from '../platform/config';
import { CliError, exitCodes } from './exit-codes';

interface IngestOptions {
  year?: string;
  timeout: string;
  json?: boolean;
}

export function registerIngestCommand(program: Command): Command {
  return program
    .command('ingest')
    .description(
      'Replay a Linux auth log (sshd, sudo, su; classic syslog format) through the file collector into the search engine. ' +
        'Use - to read standard input. Malformed lines go to a rejected-lines file with the reason.',
    )
    .argument('<file>', 'log file to replay, or - for standard input')
    .option(
      '--year <year>',
      'year of the year-less syslog timestamps (default: inferred from the current date)',
    )
    .option(
      '--timeout <seconds>',
      'how long to wait for the search engine to take every event',
      '120',
    )
    .option('--json', 'print the report as JSON')
    .action(async (file: string, options: IngestOptions) => {
      const report = await ingest(file, options);

      if (options.json) console.log(JSON.stringify(report, null, 2));
      else printReport(report);

      if (report.rejected > 0 || report.pending > 0) process.exitCode = exitCodes.partial;
    });
}

interface CommandReport extends IngestReport {
  source: string;
  indexed: number;
  duplicates: number;
  pending: number;
}

async function ingest(file: string, options: IngestOptions): Promise<CommandReport> {
  const year =
    options.year === undefined ? undefined : parseWhole('--year', options.year, 1970, 9999);
  const timeoutMs = parseWhole('--timeout', options.timeout, 1, 86_400) * 1000;
  const input = openInput(file);

  const config = loadConfig();
  const engine = await connectSearchEngine(config.search.url).catch((error: unknown) => {
    throw new CliError(
      `the search engine at ${config.search.url} is not reachable: ${String(error)}`,
      exitCodes.unavailable,
    );
  });

  // A spool of its own: the running appliance ships from a different one,
  // and a later `ingest` ships what this run could not.
  const pipeline = await createPipeline({
    engine: withIngestTimestamp(engine),
    spoolDir: path.join(config.spoolDir, 'ingest'),
    indexPrefix: config.search.indexPrefix,
  });
  pipeline.start();

  try {
    const sourceName = file === '-' ? 'stdin' : path.resolve(file);
    const rejectedFile = path.join(
      config.dataDir,
      'rejected',
      `${path.basename(file === '-' ? 'stdin' : file)}.rejected.jsonl`,
    );
    fs.mkdirSync(path.dirname(rejectedFile), { recursive: true, mode: 0o700 });

    const report = await ingestStream({ input, sourceName, pipeline, rejectedFile, year });
    const drained = await pipeline.drain(timeoutMs).then(
      () => true,
      () => false,
    );
    const stats = pipeline.stats();
    if (!drained) {
      console.error(
        `appliancectl: ${stats.pending} events still wait in the spool (${config.search.url} did not take them within ${timeoutMs / 1000} s); run ingest again to ship them`,
      );
    }

    return {
      ...report,
      source: sourceName,
      indexed: stats.indexed,
      duplicates: stats.duplicates,
      pending: stats.pending,
    };
  } finally {
    await pipeline.stop();
    await engine.close();
  }
}

function openInput(file: string): NodeJS.ReadableStream {
  if (file === '-') return process.stdin;

  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new CliError(`${file} is not a regular file`, exitCodes.usage);
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(
      `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
      exitCodes.usage,
    );
  }
  return fs.createReadStream(file);
}

function parseWhole(option: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new CliError(
      `${option} must be a whole number from ${min} to ${max}, not "${raw}"`,
      exitCodes.usage,
    );
  }
  return value;
}

function printReport(report: CommandReport): void {
  console.log(`source:     ${report.source}`);
  console.log(`lines:      ${report.lines}`);
  console.log(
    `events:     ${report.events} (${report.indexed} indexed, ${report.duplicates} already indexed, ${report.pending} waiting)`,
  );
  console.log(
    `rejected:   ${report.rejected}${report.rejected ? ` (reasons in ${report.rejectedFile})` : ''}`,
  );
}
