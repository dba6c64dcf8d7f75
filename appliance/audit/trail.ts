import { QueryTypes, type Transaction } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import type { Database } from '../platform/database';
import { readState, writeState } from '../platform/state';
import { chainInput, genesisHash, verifyChain, type ChainVerification } from './chain';
import type { AuditRecord } from './record';
import { readAuditSeal, verifySealedChain } from './seal';

/** What a caller supplies for a new record; the trail adds seq, time and the hashes. */
export type AuditEntry = Omit<AuditRecord, 'seq' | 'time' | 'prevHash' | 'hash'>;

interface AuditRow {
  seq: number;
  time: string;
  request_id: string;
  actor_user_id: string | null;
  actor_username: string | null;
  actor_role: string | null;
  action: string;
  resource_type: string;
  resource_id: string | null;
  outcome: AuditRecord['outcome'];
  source_ip: string;
  reason: string | null;
  prev_hash: string;
  hash: string;
}

const headKey = 'audit.head';

/**
 * The append-only audit trail in SQLite. Each record carries an HMAC-SHA256,
 * computed in the HSM, over the previous record's hash and its own canonical
 * form, so a deleted, reordered or edited row breaks the chain.
 */
export class AuditTrail {
  constructor(
    private readonly database: Database,
    private readonly keys: KeyProvider,
  ) {}

  /**
   * Appends a record inside the caller's write transaction. It throws when the
   * row or its HMAC cannot be made, so the caller's transaction rolls back.
   */
  async append(entry: AuditEntry, transaction: Transaction): Promise<AuditRecord> {
    const head = await this.readHead(transaction);
    const unsigned: Omit<AuditRecord, 'hash'> = {
      ...entry,
      seq: head.seq + 1,
      time: new Date().toISOString(),
      prevHash: head.hash,
    };
    const record: AuditRecord = {
      ...unsigned,
      hash: this.keys.auditHmac(chainInput(unsigned)).toString('hex'),
    };

    await this.database.sequelize.query(
      `INSERT INTO audit_records (seq, time, request_id, actor_user_id, actor_username, actor_role, action,
         resource_type, resource_id, outcome, source_ip, reason, prev_hash, hash)
       VALUES (:seq, :time, :requestId, :userId, :username, :role, :action,
         :resourceType, :resourceId, :outcome, :sourceIp, :reason, :prevHash, :hash)`,
      {
        transaction,
        replacements: {
          seq: record.seq,
          time: record.time,
          requestId: record.requestId,
          userId: record.actor.userId ?? null,
          username: record.actor.username ?? null,
          role: record.actor.role ?? null,
          action: record.action,
          resourceType: record.resource.type,
          resourceId: record.resource.id ?? null,
          outcome: record.outcome,
          sourceIp: record.sourceIp,
          reason: record.reason ?? null,
          prevHash: record.prevHash,
          hash: record.hash,
        },
      },
    );
    await writeState(
      this.database,
      headKey,
      JSON.stringify({ seq: record.seq, hash: record.hash }),
      transaction,
    );

    return record;
  }

  /** Appends one record in a write transaction of its own. */
  appendAlone(entry: AuditEntry): Promise<AuditRecord> {
    return this.database.write((transaction) => this.append(entry, transaction));
  }

  /**
   * Verifies the whole chain, then checks that its last record is the head
   * written with the newest append, which catches rows cut from the end.
   * After a restore onto a new token, it verifies across the restore's seal
   * (see verifySealedChain()).
   */
  async verify(): Promise<ChainVerification> {
    const rows = await this.database.sequelize.query<AuditRow>(
      'SELECT * FROM audit_records ORDER BY seq',
      {
        type: QueryTypes.SELECT,
      },
    );
    const hmac = (input: Buffer) => this.keys.auditHmac(input);
    const seal = await readAuditSeal(this.database);
    const result = seal
      ? verifySealedChain(rows.map(toRecord), seal, hmac)
      : verifyChain(rows.map(toRecord), hmac);
    if (!result.ok) return result;

    const head = await this.readHead();
    if (head.seq !== result.headSeq) {
      return {
        ok: false,
        checked: result.checked,
        headSeq: result.headSeq,
        firstBroken: {
          seq: result.headSeq + 1,
          reason: `the chain ends at seq ${result.headSeq} but its recorded head is seq ${head.seq}: records were removed from the end`,
        },
      };
    }
    return result;
  }

  /** Reads up to `limit` records with seq greater than `afterSeq`, oldest first. */
  async readAfter(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    const rows = await this.database.sequelize.query<AuditRow>(
      'SELECT * FROM audit_records WHERE seq > :afterSeq ORDER BY seq LIMIT :limit',
      { type: QueryTypes.SELECT, replacements: { afterSeq, limit } },
    );
    return rows.map(toRecord);
  }

  private async readHead(transaction?: Transaction): Promise<{ seq: number; hash: string }> {
    const value = await readState(this.database, headKey, transaction);
    return value ? JSON.parse(value) : { seq: 0, hash: genesisHash };
  }
}

function toRecord(row: AuditRow): AuditRecord {
  return {
    seq: row.seq,
    time: row.time,
    requestId: row.request_id,
    actor: {
      ...(row.actor_user_id ? { userId: row.actor_user_id } : {}),
      ...(row.actor_username ? { username: row.actor_username } : {}),
      ...(row.actor_role ? { role: row.actor_role } : {}),
    },
    action: row.action,
    resource: { type: row.resource_type, ...(row.resource_id ? { id: row.resource_id } : {}) },
    outcome: row.outcome,
    sourceIp: row.source_ip,
    ...(row.reason ? { reason: row.reason } : {}),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
