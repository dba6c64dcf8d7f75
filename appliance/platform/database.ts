import fs from 'node:fs';
import path from 'node:path';

import sqlcipher from '@journeyapps/sqlcipher';
import { Sequelize, Transaction, type Options } from 'sequelize';

import { logger } from './logger';

/** Length of a SQLCipher raw key in bytes (AES-256). */
export const databaseKeyLength = 32;

/** Options of openDatabase(). */
export interface OpenDatabaseOptions {
  /**
   * SQLCipher raw key. Without it the file is read and written as plain
   * SQLite, which only tests, benchmarks and the conversion of an old
   * plain file use.
   */
  key?: Buffer;
  /** File of the HSM-wrapped form of `key`; the key inventory and the master key rewrap read it. */
  keyFile?: string;
}

/** Thrown when the database key does not open the file, so the appliance must not start. */
export class DatabaseKeyError extends Error {
  override readonly name = 'DatabaseKeyError';
}

/**
 * The appliance database: one SQLite file in WAL mode. SQLite allows one
 * writer at a time, and the audit chain needs each append to see the row
 * before it, so every writing transaction in this process goes through one
 * queue (`Database.write`).
 */
export class Database {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly sequelize: Sequelize,
    /** File of the HSM-wrapped SQLCipher key; undefined for a plain SQLite file. */
    readonly keyFile?: string,
  ) {}

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

/**
 * Opens (creating if needed) the SQLite file and switches it to WAL mode.
 * With `options.key` the file is a SQLCipher database: every connection
 * that Sequelize opens (one per transaction) runs `PRAGMA key` before any
 * other statement. Throws DatabaseKeyError when the key does not open an
 * existing file.
 */
export async function openDatabase(
  file: string,
  options: OpenDatabaseOptions = {},
): Promise<Database> {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });

  // `foreignKeys` is read by the sqlite dialect but missing from Sequelize's Options type.
  const sequelizeOptions: Options & { foreignKeys: boolean } = {
    dialect: 'sqlite',
    dialectModule: connectionModule(options.key),
    storage: file,
    // Set by connectionModule() after the key, so no statement runs before it.
    foreignKeys: false,
    logging: (sql) => logger.trace({ sql }, 'sql'),
    retry: { match: [/SQLITE_BUSY/], max: 10 },
    define: { underscored: true },
  };
  const sequelize = new Sequelize(sequelizeOptions);

  try {
    // The first read of page 1: a wrong key or a plain file read with a key fails here.
    await sequelize.query('SELECT COUNT(*) FROM sqlite_master');
  } catch (error) {
    await sequelize.close();
    throw openFailure(file, options, error);
  }

  await sequelize.query('PRAGMA journal_mode = WAL');
  await sequelize.query('PRAGMA busy_timeout = 5000');
  fs.chmodSync(file, 0o600);

  return new Database(sequelize, options.key ? options.keyFile : undefined);
}

/**
 * Builds the `dialectModule` for Sequelize: @journeyapps/sqlcipher whose
 * Database constructor reports the connection open only after `PRAGMA key`
 * (when a key is given) and `PRAGMA foreign_keys = ON` have run on it.
 */
function connectionModule(key: Buffer | undefined): typeof sqlcipher {
  if (key && key.length !== databaseKeyLength) {
    throw new Error(`a database key is ${databaseKeyLength} bytes, got ${key.length}`);
  }
  // The x'…' form is a raw key, so SQLCipher skips its PBKDF2 passphrase derivation.
  const setup = [
    ...(key ? [`PRAGMA key = "x'${key.toString('hex')}'"`] : []),
    'PRAGMA foreign_keys = ON',
  ].join('; ');

  class KeyedDatabase extends sqlcipher.Database {
    constructor(file: string, mode: number, callback: (error: Error | null) => void) {
      let opened: (error: Error | null) => void = () => undefined;
      super(file, mode, (error) => opened(error));
      opened = (error) => {
        if (error) {
          callback(error);
          return;
        }
        this.exec(setup, (setupError) => callback(setupError));
      };
    }
  }

  return { ...sqlcipher, Database: KeyedDatabase } as typeof sqlcipher;
}

function openFailure(file: string, options: OpenDatabaseOptions, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (!/SQLITE_NOTADB|file is not a database/.test(message)) return error as Error;

  if (options.key) {
    return new DatabaseKeyError(
      `The database key in ${options.keyFile ?? 'the key file'} does not open ${file} (SQLite: file is not a database). The key file belongs to another database or was replaced: restore the key file that was created with this database, or restore the database from a backup.`,
    );
  }
  return new DatabaseKeyError(
    `${file} is not a plain SQLite database (SQLite: file is not a database). It is encrypted or damaged: open it with its database key.`,
  );
}
