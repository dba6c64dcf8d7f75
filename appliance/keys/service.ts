import type { KeyProvider } from '../../hsm/key-provider';
import type { TokenSetupResult } from '../../hsm/token-setup';
import type { ApplianceConfig } from '../platform/config';
import type { Database } from '../platform/database';
import { listKeys, type KeyInventoryItem } from './inventory';
import { recordKeyCreation, tokenKeys, type TokenKey } from './key-records';
import { readStartDates } from './token-dates';

/** The key inventory of a running appliance. */
export class KeyInventory {
  private constructor(
    private readonly database: Database,
    private readonly keys: TokenKey[],
  ) {}

  /**
   * Reads CKA_START_DATE of the token keys and stores their creation records.
   * Call after the key provider is open and the database is migrated; it
   * throws HsmError when the token cannot be read.
   */
  static async open(
    config: Pick<ApplianceConfig, 'hsm'>,
    database: Database,
    keys: KeyProvider,
    token: Pick<TokenSetupResult, 'createdKeys'>,
  ): Promise<KeyInventory> {
    const onToken = tokenKeys(keys);
    const startDates = readStartDates(config.hsm, onToken);
    await recordKeyCreation(database, onToken, token, startDates);
    return new KeyInventory(database, onToken);
  }

  list(): Promise<KeyInventoryItem[]> {
    return listKeys(this.database, this.keys);
  }
}
