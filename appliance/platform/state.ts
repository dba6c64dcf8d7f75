import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from './database';

/** Reads a value from the appliance_state table, or undefined when it was never written. */
export async function readState(
  database: Database,
  key: string,
  transaction?: Transaction,
): Promise<string | undefined> {
  const rows = await database.sequelize.query<{ value: string }>(
    'SELECT value FROM appliance_state WHERE key = :key',
    {
      type: QueryTypes.SELECT,
      transaction,
      replacements: { key },
    },
  );
  return rows[0]?.value;
}

/** Inserts or replaces a value in the appliance_state table within a write transaction. */
export async function writeState(
  database: Database,
  key: string,
  value: string,
  transaction: Transaction,
): Promise<void> {
  await database.sequelize.query(
    `INSERT INTO appliance_state (key, value, updated_at) VALUES (:key, :value, :now)
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
    { transaction, replacements: { key, value, now: new Date().toISOString() } },
  );
}
