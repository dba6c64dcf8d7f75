import type { ScheduledTask } from 'node-cron';

import type { KeyProvider } from '../../hsm/key-provider';
import type { TokenSetupResult } from '../../hsm/token-setup';
import type { AuditTrail } from '../audit/trail';
import type { ApplianceConfig } from '../platform/config';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import { listKeys, type KeyInventoryItem } from './inventory';
import { recordKeyCreation, tokenKeys, type TokenKey } from './key-records';
import { recordFirstMasterKeyVersion } from './master-key-versions';
import { KeyRotationService } from './rotation';
import type { RotationRecord } from './rotation-records';
import {
  parseRotationCron,
  rotationCronVariable,
  scheduleRotation,
  scheduleTenantRotation,
} from './rotation-schedule';
import { readStartDates } from './token-dates';

/** Options of KeyInventory.open(). */
export interface KeyInventoryOptions {
  /** Cron expression of scheduled rotation; defaults to process.env.KEY_ROTATION_CRON, then monthly. */
  rotationCron?: string;
}

/**
 * Tenant master keys as the tenants domain provides them, so the key
 * inventory lists them and the rotation routes resume their rewraps.
 */
export interface TenantKeySource {
  /** Lists one inventory item per tenant key version, active versions with `nextRotation`. */
  listKeys(nextRotation: Date | null): Promise<KeyInventoryItem[]>;
  /** Starts the scheduled rotation of every eligible tenant key, audited on `audit`. */
  rotateOnSchedule(audit: Pick<AuditTrail, 'append'>): Promise<unknown>;
  /** Starts the rewrap of a tenant key rotation in the background. */
  startRewrap(rotationId: string): void;
  /** Stops the tenant rewrap jobs after their current batch. */
  stop(): Promise<void>;
}

/** The key inventory and master key rotation of a running appliance. */
export class KeyInventory {
  private tenants: TenantKeySource | undefined;
  private tenantSchedule: ScheduledTask | undefined;

  private constructor(
    private readonly database: Database,
    private readonly keys: TokenKey[],
    readonly rotation: KeyRotationService,
    private readonly schedule: ScheduledTask | undefined,
    private readonly audit: Pick<AuditTrail, 'append'> | undefined,
    private readonly tenantCron: string | null,
  ) {}

  /**
   * Reads CKA_START_DATE of the token keys, stores their creation records and
   * master key version 1, resumes rotations left running, and, when `audit`
   * is given, schedules rotation. Call after the key provider is open and the
   * database is migrated. Throws HsmError when the token cannot be read and
   * an Error naming KEY_ROTATION_CRON when the schedule is invalid.
   */
  static async open(
    config: Pick<ApplianceConfig, 'hsm'> & Partial<Pick<ApplianceConfig, 'tenantKeyRotationCron'>>,
    database: Database,
    keys: KeyProvider,
    token: Pick<TokenSetupResult, 'createdKeys'>,
    audit?: Pick<AuditTrail, 'append'>,
    options: KeyInventoryOptions = {},
  ): Promise<KeyInventory> {
    // NOTE: the schedule is read from process.env because ApplianceConfig
    // has no field for it yet.
    const cron = parseRotationCron(options.rotationCron ?? process.env[rotationCronVariable]);

    const onToken = tokenKeys(keys);
    const startDates = readStartDates(config.hsm, onToken);
    await recordKeyCreation(database, onToken, token, startDates);
    await recordFirstMasterKeyVersion(database, keys);

    const rotation = new KeyRotationService(database, keys);
    await rotation.resumeUnfinished();

    const schedule =
      audit && cron !== null ? scheduleRotation(cron, rotation, database, audit) : undefined;
    if (schedule) logger.info({ cron }, 'master key rotation scheduled');
    else if (cron === null) logger.info('scheduled master key rotation is off');
    return new KeyInventory(
      database,
      onToken,
      rotation,
      schedule,
      audit,
      config.tenantKeyRotationCron ?? null,
    );
  }

  /**
   * Adds the tenant keys to the inventory and, when TENANT_KEY_ROTATION_CRON
   * is set and `audit` was given to open(), schedules their rotation. The
   * runtime calls it once the tenants domain is open.
   */
  attachTenants(tenants: TenantKeySource): void {
    this.tenants = tenants;

    const audit = this.audit;
    if (audit && this.tenantCron !== null) {
      this.tenantSchedule = scheduleTenantRotation(this.tenantCron, () =>
        tenants.rotateOnSchedule(audit),
      );
      logger.info({ cron: this.tenantCron }, 'tenant key rotation scheduled');
    } else if (this.tenantCron === null) {
      logger.info('scheduled tenant key rotation is off');
    }
  }

  /**
   * Lists the token keys, the master key versions, the tenant key versions
   * and the data-key aggregates, each with its last and next rotation.
   */
  async list(): Promise<KeyInventoryItem[]> {
    const items = await listKeys(this.database, this.keys, {
      nextMasterRotation: this.schedule?.getNextRun() ?? null,
    });
    const tenantItems =
      (await this.tenants?.listKeys(this.tenantSchedule?.getNextRun() ?? null)) ?? [];
    return [...items, ...tenantItems].map((item) => ({
      ...item,
      lastRotated: item.lastRotated ?? null,
      nextRotation: item.nextRotation ?? null,
    }));
  }

  /** Starts the rewrap of `rotation` with the job of its key: the master key's or its project's. */
  startRewrap(rotation: RotationRecord): void {
    if (rotation.projectId === null) {
      this.rotation.startRewrap(rotation.id);
      return;
    }
    if (!this.tenants) {
      throw new Error(
        `The tenant key rotation ${rotation.id} needs the tenants domain, which is not open.`,
      );
    }
    this.tenants.startRewrap(rotation.id);
  }

  /** Stops the schedule and waits for running rewrap batches; call before closing the database. */
  async stop(): Promise<void> {
    await this.schedule?.destroy();
    await this.tenantSchedule?.destroy();
    await this.rotation.stop();
    await this.tenants?.stop();
  }
}
