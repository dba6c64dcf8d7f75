import fs from 'node:fs';
import path from 'node:path';

import { Sequelize, Transaction } from 'sequelize';

import { logger } from './logger';

/**
 * The appliance database: one SQLite file in WAL mode. SQLite allows one
 * writer at a time, and the audit chain needs each append to see the row
 * before it, so every writing transaction in this process goes through one
 * queue (`Database.write`).
 */
export class Database {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly sequelize: Sequelize) {}

  /** Runs `work` in an IMMEDIATE transaction once every earlier writer has finished. */
  write<T>(work: (transaction: Transaction) => Promise<T>): Promise<T> {
    const run = () =>
      this.sequelize.transaction({ type: Transaction.TYPES.IMMEDIATE }, (transaction) =>
        work(transaction),
      );
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    await this.sequelize.close();
  }
}

/** Opens (creating if needed) the SQLite file and switches it to WAL mode. */
export async function openDatabase(file: string): Promise<Database> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });

  const sequelize = new Sequelize({
    dialect: 'sqlite',
    storage: file,
    logging: (sql) => logger.trace({ sql }, 'sql'),
    retry: { match: [/SQLITE_BUSY/], max: 10 },
    define: { underscored: true },
  });

  await sequelize.query('PRAGMA journal_mode = WAL');
  await sequelize.query('PRAGMA busy_timeout = 5000');
  await sequelize.query('PRAGMA foreign_keys = ON');
  fs.chmodSync(file, 0o600);

  return new Database(sequelize);
}
