import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../../platform/database';
import type { RiskSettings } from './settings';

interface EventRow {
  source_ip: string;
  occurred_at: string;
}

/** Password sign-in attempts per user in SQLite, the baseline of the risk score. */
export class SignInHistory {
  constructor(private readonly database: Database) {}

  /** Records one attempt and drops this user's events older than `historyDays`. */
  async record(
    attempt: { userId: string; sourceIp: string; succeeded: boolean; at?: Date },
    settings: RiskSettings,
    transaction?: Transaction,
  ): Promise<void> {
    const at = attempt.at ?? new Date();
    const write = async (active: Transaction) => {
      await this.database.sequelize.query(
        `INSERT INTO sign_in_events (user_id, source_ip, succeeded, occurred_at)
         VALUES (:userId, :sourceIp, :succeeded, :at)`,
        {
          transaction: active,
          replacements: {
            userId: attempt.userId,
            sourceIp: attempt.sourceIp.slice(0, 64),
            succeeded: attempt.succeeded ? 1 : 0,
            at: at.toISOString(),
          },
        },
      );
      await this.database.sequelize.query(
        'DELETE FROM sign_in_events WHERE user_id = :userId AND occurred_at < :cutoff',
        {
          transaction: active,
          replacements: { userId: attempt.userId, cutoff: daysBefore(at, settings.historyDays) },
        },
      );
    };
    if (transaction) await write(transaction);
    else await this.database.write(write);
  }

  /**
   * Returns the user's successes in the history window, and the failures in
   * the failure window that came after the last success.
   */
  async baselineOf(
    userId: string,
    now: Date,
    settings: RiskSettings,
  ): Promise<{ successes: { sourceIp: string; occurredAt: Date }[]; recentFailures: number }> {
    const rows = await this.database.sequelize.query<EventRow>(
      `SELECT source_ip, occurred_at FROM sign_in_events
       WHERE user_id = :userId AND succeeded = 1 AND occurred_at >= :since`,
      {
        type: QueryTypes.SELECT,
        replacements: { userId, since: daysBefore(now, settings.historyDays) },
      },
    );
    const [failures] = await this.database.sequelize.query<{ n: number }>(
      `SELECT COUNT(*) AS n FROM sign_in_events
       WHERE user_id = :userId AND succeeded = 0 AND occurred_at >= :since
         AND occurred_at > COALESCE(
           (SELECT MAX(occurred_at) FROM sign_in_events WHERE user_id = :userId AND succeeded = 1),
           '')`,
      {
        type: QueryTypes.SELECT,
        replacements: {
          userId,
          since: new Date(now.getTime() - settings.failureWindowMinutes * 60_000).toISOString(),
        },
      },
    );
    return {
      successes: rows.map((row) => ({
        sourceIp: row.source_ip,
        occurredAt: new Date(row.occurred_at),
      })),
      recentFailures: failures.n,
    };
  }
}

function daysBefore(at: Date, days: number): string {
  return new Date(at.getTime() - days * 86_400_000).toISOString();
}
