import { apiDelete, apiGet, apiPost, segment } from '../lib/api';
import type { PermissionName } from '../auth/permissions';
// Type-only imports of the appliance's response shapes: the build erases them, and a change on
// the server side fails the console's type check instead of drifting silently.
import type { ApiKeySummary } from '../../../appliance/identity/api-keys';
import type { SessionSummary } from '../../../appliance/identity/sessions';
import type { TotpEnrolment } from '../../../appliance/identity/totp';
import type { Project } from '../../../appliance/tenants/service';

export type { ApiKeySummary, Project, SessionSummary, TotpEnrolment };

/** A new API key with its secret, which the appliance returns only in this response. */
export interface CreatedApiKey extends ApiKeySummary {
  key: string;
}

interface Items<T> {
  items: T[];
}

/** Reads from GET /auth/me whether TOTP is active for the signed-in account. */
export async function fetchTotpActive(): Promise<boolean> {
  const response = await apiGet<{ mfa?: { totp?: boolean } }>('/auth/me');
  return response.mfa?.totp === true;
}

/** Starts TOTP enrolment; it replaces an earlier unconfirmed one and fails with 409 when TOTP is active. */
export function enrolTotp(): Promise<TotpEnrolment> {
  return apiPost<TotpEnrolment>('/auth/mfa/totp/enroll');
}

/** Activates the pending authenticator with a current code and returns the recovery codes. */
export async function confirmTotp(code: string): Promise<string[]> {
  const response = await apiPost<{ recoveryCodes: string[] }>('/auth/mfa/totp/confirm', { code });
  return response.recoveryCodes;
}

export async function listSessions(): Promise<SessionSummary[]> {
  return (await apiGet<Items<SessionSummary>>('/auth/sessions')).items;
}

export function revokeSession(id: string): Promise<void> {
  return apiDelete(`/auth/sessions/${segment(id)}`);
}

export async function listApiKeys(): Promise<ApiKeySummary[]> {
  return (await apiGet<Items<ApiKeySummary>>('/api-keys')).items;
}

export function createApiKey(input: {
  name: string;
  permissions: PermissionName[];
  /** Limits the key to the prompts of these projects; leave it out for no limit. */
  projectIds?: string[];
  expiresAt: string;
}): Promise<CreatedApiKey> {
  return apiPost<CreatedApiKey>('/api-keys', input);
}

/** Lists the projects (GET /projects, which needs projects:read). */
export async function listProjects(): Promise<Project[]> {
  return (await apiGet<Items<Project>>('/projects')).items;
}

export function revokeApiKey(id: string): Promise<void> {
  return apiDelete(`/api-keys/${segment(id)}`);
}
