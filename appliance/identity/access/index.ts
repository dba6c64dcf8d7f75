import type { KeyProvider } from '../../../hsm/key-provider';
import type { AuditTrail } from '../../audit/trail';
import type { RouteSpec } from '../../http/route';
import type { ApplianceConfig } from '../../platform/config';
import type { Database } from '../../platform/database';
import type { IdentityService } from '../service';
import { breakGlassRoutes } from './break-glass';
import { AccessChanges } from './changes';
import { AccessControl } from './decision';
import { reviewRoutes } from './review-routes';
import { AccessReviews } from './reviews';
import { accessRoutes } from './routes';

export interface AccessModule {
  control: AccessControl;
  changes: AccessChanges;
  routes: RouteSpec[];
  start(audit: AuditTrail): void;
  stop(): void;
}

/** Builds the access-control domain: the decision point, its admin routes and the review sweeper. */
export async function openAccessControl(
  config: ApplianceConfig,
  database: Database,
  keys: KeyProvider,
  identity: IdentityService,
  eventIndexPattern: string,
): Promise<AccessModule> {
  const control = new AccessControl(database);
  await control.open();

  const changes = new AccessChanges(
    database,
    control,
    (userId, role, transaction) => identity.updateUser(userId, { role }, transaction),
    config.access.changeApproval,
  );
  // Tokens issued by OAuth carry only the scope their owner still holds.
  identity.oauth.heldBy = async (owner) => {
    const grants = await control.effectiveGrants(
      { userId: owner.id, role: owner.role },
      new Date(),
    );
    return new Set(grants.flatMap((grant) => [...grant.permissions]));
  };

  const reviews = new AccessReviews(database, control, async (userId, transaction) => {
    await identity.updateUser(userId, { disabled: true }, transaction);
  });

  return {
    control,
    changes,
    routes: [
      ...accessRoutes(control, changes),
      ...breakGlassRoutes(database, control, identity, {
        eligibleRoles: config.access.breakGlassRoles,
        maxMinutes: config.access.breakGlassMaxMinutes,
        eventIndexPattern,
      }),
      ...reviewRoutes(reviews, keys),
    ],
    start: (audit) => reviews.start(audit),
    stop: () => reviews.stop(),
  };
}
