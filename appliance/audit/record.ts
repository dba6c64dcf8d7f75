/** Outcome of an audited request, as the audit trail stores it. */
export type AuditOutcome = 'success' | 'failure' | 'denied';

/**
 * One row of the audit trail. The hash chain covers every field below except
 * `hash` itself; see chain.ts for the canonical form.
 */
export interface AuditRecord {
  seq: number;
  time: string;
  requestId: string;
  actor: { userId?: string; username?: string; role?: string };
  action: string;
  resource: { type: string; id?: string };
  outcome: AuditOutcome;
  sourceIp: string;
  reason?: string;
  prevHash: string;
  hash: string;
}
