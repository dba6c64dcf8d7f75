import { apiGet, apiPost } from '../lib/api';
// Type-only imports of the appliance's response shapes; the build erases them.
import type { KeyInventoryItem, KeyState } from '../../../appliance/keys/inventory';
import type { RotationRecord } from '../../../appliance/keys/rotation-records';

export type { KeyInventoryItem, KeyState, RotationRecord };

interface Items<T> {
  items: T[];
}

export async function listKeys(): Promise<KeyInventoryItem[]> {
  return (await apiGet<Items<KeyInventoryItem>>('/keys')).items;
}

export async function listRotations(): Promise<RotationRecord[]> {
  return (await apiGet<Items<RotationRecord>>('/keys/rotations')).items;
}

/**
 * Generates a new master key version and starts rewrapping the data keys under it. The
 * appliance returns 202 once the rotation is recorded, and the rewrap runs in the background.
 */
export function rotateMasterKey(): Promise<RotationRecord> {
  return apiPost<RotationRecord>('/keys/rotate');
}
