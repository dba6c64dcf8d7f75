import type { AuditTrail } from '../../audit/trail';
import type { RouteSpec } from '../../http/route';
import type { ApplianceConfig } from '../../platform/config';
import type { Database } from '../../platform/database';
import type { IdentityService } from '../service';
import { mfaResetRoutes } from './mfa-reset-routes';
import { recoveryRoutes } from './routes';

/** Account recovery by email and second-factor reset, as mounted by the appliance. */
export function accountRecoveryRoutes(
  identity: IdentityService,
  config: ApplianceConfig,
  database: Database,
  audit: AuditTrail,
): RouteSpec[] {
  return [
    ...recoveryRoutes({
      identity,
      database,
      audit,
      settings: config.recovery,
      applianceHost: config.host,
    }),
    ...mfaResetRoutes(identity, database),
  ];
}
