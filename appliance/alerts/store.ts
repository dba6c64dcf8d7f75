import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { Database } from '../platform/database';
import {
  ruleNames,
  type Alert,
  type AlertEntity,
  type AlertStatus,
  type RuleId,
  type Severity,
  type StoredAlert,
  type StoredEventQuery,
} from './model';

interface AlertRow {
  id: string;
  rule_id: RuleId;
  severity: Severity;
  status: AlertStatus;
  entity_field: AlertEntity['field'];
  entity_value: string;
  summary: string;
  event_count: number;
  first_seen: string;
  last_seen: string;
  query_index: string;
  query_dsl: string;
  created_at: string;
  updated_at: string;
}

export interface AlertFilter {
  status?: AlertStatus;
  severity?: Severity;
  ruleId?: RuleId;
  /** Exact entity value, such as an IP address or a user name. */
  entity?: string;
  limit: number;
}

/** Fields a detection supplies for a new alert. */
export interface NewAlert {
  ruleId: RuleId;
  severity: Severity;
  entity: AlertEntity;
  summary: string;
  eventCount: number;
  firstSeen: string;
  lastSeen: string;
  eventQuery: StoredEventQuery;
}

/** The fields a grouped burst changes on an existing alert. */
export type AlertExtension = Pick<
  NewAlert,
  'severity' | 'summary' | 'eventCount' | 'firstSeen' | 'lastSeen' | 'eventQuery'
>;

/** Alerts in SQLite. Writes take the caller's transaction from `Database.write` or `context.commit`. */
export class AlertStore {
  constructor(private readonly database: Database) {}

  /** Lists alerts matching every given filter, newest `lastSeen` first. */
  async list(filter: AlertFilter): Promise<Alert[]> {
    const conditions: string[] = [];
    if (filter.status) conditions.push('status = :status');
    if (filter.severity) conditions.push('severity = :severity');
    if (filter.ruleId) conditions.push('rule_id = :ruleId');
    if (filter.entity !== undefined) conditions.push('entity_value = :entity');
    const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';

    const rows = await this.database.sequelize.query<AlertRow>(
      `SELECT * FROM alerts ${where} ORDER BY last_seen DESC, created_at DESC LIMIT :limit`,
      {
        type: QueryTypes.SELECT,
        replacements: {
          status: filter.status ?? null,
          severity: filter.severity ?? null,
          ruleId: filter.ruleId ?? null,
          entity: filter.entity ?? null,
          limit: filter.limit,
        },
      },
    );
    return rows.map((row) => toAlert(toStoredAlert(row)));
  }

  async get(id: string, transaction?: Transaction): Promise<StoredAlert | undefined> {
    const rows = await this.database.sequelize.query<AlertRow>(
      'SELECT * FROM alerts WHERE id = :id',
      {
        type: QueryTypes.SELECT,
        transaction,
        replacements: { id },
      },
    );
    return rows.length ? toStoredAlert(rows[0]) : undefined;
  }

  /**
   * Lists the alerts of one rule and entity whose event-time range
   * [firstSeen, lastSeen] intersects [from, to], newest `lastSeen` first.
   */
  async listForEntity(
    ruleId: RuleId,
    entityValue: string,
    from: string,
    to: string,
    transaction?: Transaction,
  ): Promise<StoredAlert[]> {
    const rows = await this.database.sequelize.query<AlertRow>(
      `SELECT * FROM alerts
       WHERE rule_id = :ruleId AND entity_value = :entityValue AND first_seen <= :to AND last_seen >= :from
       ORDER BY last_seen DESC`,
      { type: QueryTypes.SELECT, transaction, replacements: { ruleId, entityValue, from, to } },
    );
    return rows.map(toStoredAlert);
  }

  async create(alert: NewAlert, transaction: Transaction): Promise<StoredAlert> {
    const now = new Date().toISOString();
    const stored: StoredAlert = {
      ...alert,
      id: crypto.randomUUID(),
      ruleName: ruleNames[alert.ruleId],
      status: 'open',
      createdAt: now,
      updatedAt: now,
    };

    await this.database.sequelize.query(
      `INSERT INTO alerts (id, rule_id, severity, status, entity_field, entity_value, summary, event_count,
         first_seen, last_seen, query_index, query_dsl, created_at, updated_at)
       VALUES (:id, :ruleId, :severity, :status, :entityField, :entityValue, :summary, :eventCount,
         :firstSeen, :lastSeen, :queryIndex, :queryDsl, :createdAt, :updatedAt)`,
      {
        transaction,
        replacements: {
          id: stored.id,
          ruleId: stored.ruleId,
          severity: stored.severity,
          status: stored.status,
          entityField: stored.entity.field,
          entityValue: stored.entity.value,
          summary: stored.summary,
          eventCount: stored.eventCount,
          firstSeen: stored.firstSeen,
          lastSeen: stored.lastSeen,
          queryIndex: stored.eventQuery.index,
          queryDsl: JSON.stringify(stored.eventQuery.query),
          createdAt: stored.createdAt,
          updatedAt: stored.updatedAt,
        },
      },
    );
    return stored;
  }

  /** Applies a grouped burst to an alert and returns it, or undefined when the id is unknown. */
  async extend(
    id: string,
    extension: AlertExtension,
    transaction: Transaction,
  ): Promise<StoredAlert | undefined> {
    await this.database.sequelize.query(
      `UPDATE alerts SET severity = :severity, summary = :summary, event_count = :eventCount,
         first_seen = :firstSeen, last_seen = :lastSeen, query_index = :queryIndex, query_dsl = :queryDsl,
         updated_at = :updatedAt
       WHERE id = :id`,
      {
        transaction,
        replacements: {
          id,
          severity: extension.severity,
          summary: extension.summary,
          eventCount: extension.eventCount,
          firstSeen: extension.firstSeen,
          lastSeen: extension.lastSeen,
          queryIndex: extension.eventQuery.index,
          queryDsl: JSON.stringify(extension.eventQuery.query),
          updatedAt: new Date().toISOString(),
        },
      },
    );
    return this.get(id, transaction);
  }

  /** Sets the triage status and returns the alert, or undefined when the id is unknown. */
  async setStatus(
    id: string,
    status: AlertStatus,
    transaction: Transaction,
  ): Promise<Alert | undefined> {
    const current = await this.get(id, transaction);
    if (!current) return undefined;
    if (current.status === status) return toAlert(current);

    await this.database.sequelize.query(
      'UPDATE alerts SET status = :status, updated_at = :updatedAt WHERE id = :id',
      {
        transaction,
        replacements: { id, status, updatedAt: new Date().toISOString() },
      },
    );
    const updated = await this.get(id, transaction);
    return updated && toAlert(updated);
  }
}

/** Converts a stored alert to its API form, without the stored query. */
export function toAlert(stored: StoredAlert): Alert {
  const { eventQuery: _eventQuery, ...alert } = stored;
  return alert;
}

function toStoredAlert(row: AlertRow): StoredAlert {
  return {
    id: row.id,
    ruleId: row.rule_id,
    ruleName: ruleNames[row.rule_id] ?? row.rule_id,
    severity: row.severity,
    status: row.status,
    entity: { field: row.entity_field, value: row.entity_value },
    summary: row.summary,
    eventCount: row.event_count,
    firstSeen: row.first_seen,
    lastSeen: row.last_seen,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    eventQuery: {
      index: row.query_index,
      query: JSON.parse(row.query_dsl) as Record<string, unknown>,
    },
  };
}
