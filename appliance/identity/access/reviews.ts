import crypto from 'node:crypto';

import { QueryTypes, type Transaction } from 'sequelize';

import type { AuditTrail } from '../../audit/trail';
import { problems } from '../../http/problem';
import type { Database } from '../../platform/database';
import { logger } from '../../platform/logger';
import type { Permission } from '../permissions';
import type { AccessControl } from './decision';
import { scopeColumns, scopeFromColumns, type Scope } from './scope';

export type UnreviewedAction = 'revoke' | 'keep';
export type ItemDecision = 'keep' | 'revoke' | 'expired';

export interface ReviewItem {
  id: string;
  userId: string;
  username: string;
  /** `base-role` is the user's base role; revoking it disables the account. */
  kind: 'base-role' | 'grant' | 'delegation';
  grantId: string | null;
  role: string | null;
  scope: Scope;
  permissions: Permission[];
  decision: ItemDecision | null;
  decidedBy: string | null;
  decidedAt: string | null;
  comment: string | null;
}

export interface ReviewCampaign {
  id: string;
  name: string;
  createdBy: string;
  createdAt: string;
  dueAt: string;
  unreviewedAction: UnreviewedAction;
  closedAt: string | null;
  progress: { items: number; decided: number; kept: number; revoked: number; expired: number };
}

/** Disables an account and ends its sessions; provided by the identity service. */
export type DisableUser = (userId: string, transaction: Transaction) => Promise<void>;

interface CampaignRow {
  id: string;
  name: string;
  created_by: string;
  created_at: string;
  due_at: string;
  unreviewed_action: UnreviewedAction;
  closed_at: string | null;
}

interface ItemRow {
  id: string;
  user_id: string;
  username: string;
  kind: ReviewItem['kind'];
  grant_id: string | null;
  role: string | null;
  scope_type: string;
  scope_id: string | null;
  permissions: string;
  decision: ItemDecision | null;
  decided_by: string | null;
  decided_at: string | null;
  comment: string | null;
}

/**
 * Access review campaigns. Opening one snapshots every enabled user's base
 * role and live grants with the permissions they give. Reviewers keep or
 * revoke each item. At the due date the campaign closes, and unless it was
 * opened with `keep`, unreviewed grants are revoked and unreviewed accounts
 * disabled.
 */
export class AccessReviews {
  private sweeper?: NodeJS.Timeout;

  constructor(
    private readonly database: Database,
    private readonly access: AccessControl,
    private readonly disableUser: DisableUser,
  ) {}

  async open(
    input: { name: string; dueAt: Date; unreviewedAction: UnreviewedAction; createdBy: string },
    transaction: Transaction,
  ): Promise<string> {
    const id = crypto.randomUUID();
    await this.database.sequelize.query(
      `INSERT INTO access_reviews (id, name, created_by, created_at, due_at, unreviewed_action)
       VALUES (:id, :name, :createdBy, :now, :dueAt, :unreviewedAction)`,
      {
        transaction,
        replacements: {
          id,
          ...input,
          dueAt: input.dueAt.toISOString(),
          now: new Date().toISOString(),
        },
      },
    );

    const users = await this.database.sequelize.query<{
      id: string;
      username: string;
      role: string;
    }>('SELECT id, username, role FROM users WHERE disabled = 0 ORDER BY username', {
      type: QueryTypes.SELECT,
      transaction,
    });
    for (const user of users) {
      await this.addItem(
        id,
        user,
        { kind: 'base-role', grantId: null, role: user.role, scope: { type: 'appliance' } },
        transaction,
      );
      for (const grant of await this.access.grants.activeFor(user.id, new Date(), transaction)) {
        if (grant.source === 'break-glass') continue;
        await this.addItem(
          id,
          user,
          {
            kind: grant.source,
            grantId: grant.id,
            role: grant.role,
            scope: grant.scope,
            permissions: grant.permissions ?? undefined,
          },
          transaction,
        );
      }
    }
    return id;
  }

  private async addItem(
    reviewId: string,
    user: { id: string; username: string },
    item: {
      kind: ReviewItem['kind'];
      grantId: string | null;
      role: string | null;
      scope: Scope;
      permissions?: Permission[];
    },
    transaction: Transaction,
  ): Promise<void> {
    const permissions =
      item.permissions ?? [...this.access.roles.permissionsOf(item.role ?? '')].sort();
    await this.database.sequelize.query(
      `INSERT INTO access_review_items (id, review_id, user_id, username, kind, grant_id, role, scope_type, scope_id, permissions)
       VALUES (:id, :reviewId, :userId, :username, :kind, :grantId, :role, :scope_type, :scope_id, :permissions)`,
      {
        transaction,
        replacements: {
          id: crypto.randomUUID(),
          reviewId,
          userId: user.id,
          username: user.username,
          kind: item.kind,
          grantId: item.grantId,
          role: item.role,
          ...scopeColumns(item.scope),
          permissions: JSON.stringify(permissions),
        },
      },
    );
  }

  async list(): Promise<ReviewCampaign[]> {
    const rows = await this.database.sequelize.query<CampaignRow>(
      'SELECT * FROM access_reviews ORDER BY created_at DESC',
      {
        type: QueryTypes.SELECT,
      },
    );
    return Promise.all(rows.map((row) => this.withProgress(row)));
  }

  async get(
    id: string,
    transaction?: Transaction,
  ): Promise<{ campaign: ReviewCampaign; items: ReviewItem[] }> {
    const rows = await this.database.sequelize.query<CampaignRow>(
      'SELECT * FROM access_reviews WHERE id = :id',
      {
        type: QueryTypes.SELECT,
        transaction,
        replacements: { id },
      },
    );
    if (!rows[0])
      throw problems.notFoundDetail(
        `No access review ${id}; list them with GET /api/v1/access/reviews.`,
      );
    return {
      campaign: await this.withProgress(rows[0], transaction),
      items: await this.items(id, transaction),
    };
  }

  /** Records a reviewer's decision; a revoke takes effect at once. */
  async decide(
    reviewId: string,
    itemId: string,
    decision: { decision: 'keep' | 'revoke'; comment?: string; reviewerId: string },
    transaction: Transaction,
  ): Promise<ReviewItem> {
    const { campaign, items } = await this.get(reviewId, transaction);
    if (campaign.closedAt) throw problems.conflict('This access review is closed; open a new one.');
    const item = items.find((entry) => entry.id === itemId);
    if (!item) throw problems.notFoundDetail(`Access review ${reviewId} has no item ${itemId}.`);
    if (item.userId === decision.reviewerId)
      throw problems.forbidden('You cannot review your own access; another reviewer must.');
    if (item.decision) throw problems.conflict(`This item was already decided (${item.decision}).`);

    if (decision.decision === 'revoke' && (await this.isLastAdmin(item, transaction)))
      throw problems.conflict(
        `${item.username} is the last enabled admin; make someone else an admin before revoking this.`,
      );

    await this.setDecision(
      item.id,
      decision.decision,
      decision.reviewerId,
      decision.comment ?? null,
      transaction,
    );
    if (decision.decision === 'revoke')
      await this.revoke(item, decision.reviewerId, 'revoked in access review', transaction);
    return (await this.items(reviewId, transaction)).find((entry) => entry.id === itemId)!;
  }

  /** Closes a campaign and applies its unreviewed action; returns how many items expired. */
  async close(reviewId: string, actorId: string | null, transaction: Transaction): Promise<number> {
    const { campaign, items } = await this.get(reviewId, transaction);
    if (campaign.closedAt) throw problems.conflict('This access review is already closed.');

    const unreviewed = items.filter((item) => !item.decision);
    if (campaign.unreviewedAction === 'revoke') {
      for (const item of unreviewed) {
        // Expiring the last admin would lock everyone out of the appliance.
        const lastAdmin = await this.isLastAdmin(item, transaction);
        const comment = lastAdmin
          ? 'not reviewed by the due date; kept as the last enabled admin'
          : 'not reviewed by the due date';
        await this.setDecision(item.id, 'expired', null, comment, transaction);
        if (!lastAdmin)
          await this.revoke(item, actorId, 'not reviewed by the due date', transaction);
      }
    }
    await this.database.sequelize.query(
      'UPDATE access_reviews SET closed_at = :now WHERE id = :id',
      {
        transaction,
        replacements: { id: reviewId, now: new Date().toISOString() },
      },
    );
    return campaign.unreviewedAction === 'revoke' ? unreviewed.length : 0;
  }

  /** Closes campaigns past their due date every minute, each with its own audit record. */
  start(audit: AuditTrail, intervalMs = 60_000): void {
    this.sweeper = setInterval(() => void this.closeDue(audit), intervalMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  async closeDue(audit: AuditTrail): Promise<void> {
    const due = await this.database.sequelize.query<{ id: string }>(
      'SELECT id FROM access_reviews WHERE closed_at IS NULL AND due_at <= :now',
      { type: QueryTypes.SELECT, replacements: { now: new Date().toISOString() } },
    );
    for (const { id } of due) {
      try {
        await this.database.write(async (transaction) => {
          const expired = await this.close(id, null, transaction);
          await audit.append(
            {
              requestId: crypto.randomUUID(),
              actor: { username: 'appliance' },
              action: 'access.review.close',
              resource: { type: 'access-review', id },
              outcome: 'success',
              sourceIp: 'local',
              reason: `due date passed; ${expired} unreviewed item(s) expired`,
            },
            transaction,
          );
        });
      } catch (error) {
        logger.error({ err: error, reviewId: id }, 'could not close a due access review');
      }
    }
  }

  private async isLastAdmin(item: ReviewItem, transaction: Transaction): Promise<boolean> {
    if (item.kind !== 'base-role' || item.role !== 'admin') return false;
    return (await this.access.grants.otherAdmins(item.userId, transaction)) === 0;
  }

  private async revoke(
    item: ReviewItem,
    actorId: string | null,
    reason: string,
    transaction: Transaction,
  ): Promise<void> {
    if (item.grantId) await this.access.grants.revoke(item.grantId, actorId, reason, transaction);
    else await this.disableUser(item.userId, transaction);
  }

  private async setDecision(
    itemId: string,
    decision: ItemDecision,
    by: string | null,
    comment: string | null,
    transaction: Transaction,
  ): Promise<void> {
    await this.database.sequelize.query(
      `UPDATE access_review_items SET decision = :decision, decided_by = :by, decided_at = :now, comment = :comment
       WHERE id = :itemId`,
      {
        transaction,
        replacements: { itemId, decision, by, comment, now: new Date().toISOString() },
      },
    );
  }

  private async items(reviewId: string, transaction?: Transaction): Promise<ReviewItem[]> {
    const rows = await this.database.sequelize.query<ItemRow>(
      'SELECT * FROM access_review_items WHERE review_id = :reviewId ORDER BY username, kind, rowid',
      { type: QueryTypes.SELECT, transaction, replacements: { reviewId } },
    );
    return rows.map((row) => ({
      id: row.id,
      userId: row.user_id,
      username: row.username,
      kind: row.kind,
      grantId: row.grant_id,
      role: row.role,
      scope: scopeFromColumns(row.scope_type, row.scope_id),
      permissions: JSON.parse(row.permissions) as Permission[],
      decision: row.decision,
      decidedBy: row.decided_by,
      decidedAt: row.decided_at ? new Date(row.decided_at).toISOString() : null,
      comment: row.comment,
    }));
  }

  private async withProgress(row: CampaignRow, transaction?: Transaction): Promise<ReviewCampaign> {
    const items = await this.items(row.id, transaction);
    const count = (decision: ItemDecision) =>
      items.filter((item) => item.decision === decision).length;
    return {
      id: row.id,
      name: row.name,
      createdBy: row.created_by,
      createdAt: new Date(row.created_at).toISOString(),
      dueAt: new Date(row.due_at).toISOString(),
      unreviewedAction: row.unreviewed_action,
      closedAt: row.closed_at ? new Date(row.closed_at).toISOString() : null,
      progress: {
        items: items.length,
        decided: items.filter((item) => item.decision).length,
        kept: count('keep'),
        revoked: count('revoke'),
        expired: count('expired'),
      },
    };
  }
}
