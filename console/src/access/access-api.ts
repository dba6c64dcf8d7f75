import { apiDelete, apiGet, apiPost, apiPut, apiRequest, segment, withQuery } from '../lib/api';
// Type-only imports of the appliance's response shapes: the build erases them, and a change on
// the server side fails the console's type check instead of drifting silently.
import type { Activation } from '../../../appliance/identity/access/break-glass';
import type { ChangeRequest } from '../../../appliance/identity/access/change-requests';
import type { NewGrantRequest } from '../../../appliance/identity/access/changes';
import type { Conditions } from '../../../appliance/identity/access/conditions';
import type { Grant } from '../../../appliance/identity/access/grants';
import type { OwnAccessView } from '../../../appliance/identity/access/routes';
import type { ReviewCampaign, ReviewItem } from '../../../appliance/identity/access/reviews';
import type { RoleDefinition, RoleView } from '../../../appliance/identity/access/roles';
import type { Classification, Scope } from '../../../appliance/identity/access/scope';

export type {
  Activation,
  ChangeRequest,
  Classification,
  Conditions,
  Grant,
  NewGrantRequest,
  ReviewCampaign,
  ReviewItem,
  RoleDefinition,
  RoleView,
  Scope,
};

/** Classification labels from least to most sensitive, as appliance/identity/access/scope.ts orders them. */
export const CLASSIFICATIONS = [
  'public',
  'internal',
  'confidential',
  'restricted',
] as const satisfies readonly Classification[];

/** Weekday names that a grant schedule accepts. */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

/**
 * Result of a role, grant or user role change: applied at once, or filed as a change request
 * (HTTP 202) when the appliance runs with ACCESS_CHANGE_APPROVAL=on.
 */
export type Submitted<T> = { applied: T } | { pending: ChangeRequest };

interface Items<T> {
  items: T[];
}

/** Tells a 202 `{changeRequest}` body from the applied change. */
export function toSubmitted<T>(body: T | { changeRequest: ChangeRequest }): Submitted<T> {
  if (body && typeof body === 'object' && 'changeRequest' in body)
    return { pending: body.changeRequest };
  return { applied: body };
}

export async function listRoles(): Promise<RoleView[]> {
  return (await apiGet<Items<RoleView>>('/access/roles')).items;
}

export async function createRole(definition: RoleDefinition): Promise<Submitted<RoleView>> {
  return toSubmitted(await apiPost<RoleView>('/access/roles', definition));
}

export async function replaceRole(definition: RoleDefinition): Promise<Submitted<RoleView>> {
  const { name, ...rest } = definition;
  return toSubmitted(await apiPut<RoleView>(`/access/roles/${segment(name)}`, rest));
}

/** Deletes a custom role; the appliance returns 204, or 202 with a change request. */
export async function deleteRole(name: string): Promise<Submitted<undefined>> {
  // apiRequest returns undefined for 204; a 202 carries the change request as JSON.
  const body = await apiRequest<undefined | { changeRequest: ChangeRequest }>(
    'DELETE',
    `/access/roles/${segment(name)}`,
  );
  return toSubmitted(body);
}

export async function listGrants(filter: {
  userId?: string;
  includeEnded?: boolean;
}): Promise<Grant[]> {
  const path = withQuery('/access/grants', {
    userId: filter.userId,
    includeEnded: filter.includeEnded ? 'true' : undefined,
  });
  return (await apiGet<Items<Grant>>(path)).items;
}

export async function createGrant(grant: NewGrantRequest): Promise<Submitted<Grant>> {
  return toSubmitted(await apiPost<Grant>('/access/grants', grant));
}

export function revokeGrant(id: string): Promise<void> {
  return apiDelete(`/access/grants/${segment(id)}`);
}

export function renewGrant(id: string, expiresAt: string): Promise<Grant> {
  return apiPost<Grant>(`/access/grants/${segment(id)}/renew`, { expiresAt });
}

/** Permissions and grants of the signed-in user, as GET /access/me returns them. */
/** The body of GET /access/me: the caller's effective grants, the base role first. */
export type OwnAccess = OwnAccessView;

export function fetchOwnAccess(): Promise<OwnAccess> {
  return apiGet<OwnAccess>('/access/me');
}

export function listChangeRequests(
  status?: 'pending',
): Promise<{ approvalRequired: boolean; items: ChangeRequest[] }> {
  return apiGet(withQuery('/access/change-requests', { status }));
}

export function decideChangeRequest(
  id: string,
  decision: 'approve' | 'reject',
  comment?: string,
): Promise<ChangeRequest> {
  return apiPost<ChangeRequest>(
    `/access/change-requests/${segment(id)}/${decision}`,
    comment ? { comment } : {},
  );
}

export async function listActivations(): Promise<Activation[]> {
  return (await apiGet<Items<Activation>>('/access/break-glass')).items;
}

export function openBreakGlass(input: {
  justification: string;
  durationMinutes: number;
}): Promise<Activation> {
  return apiPost<Activation>('/access/break-glass', input);
}

export function endBreakGlass(id: string): Promise<Activation> {
  return apiPost<Activation>(`/access/break-glass/${segment(id)}/end`);
}

export function reviewBreakGlass(
  id: string,
  review: { outcome: 'justified' | 'unjustified'; comment: string },
): Promise<Activation> {
  return apiPost<Activation>(`/access/break-glass/${segment(id)}/review`, review);
}

/** An access review campaign with its items, as GET /access/reviews/:id returns it. */
export interface ReviewDetail {
  campaign: ReviewCampaign;
  items: ReviewItem[];
}

export async function listReviews(): Promise<ReviewCampaign[]> {
  return (await apiGet<Items<ReviewCampaign>>('/access/reviews')).items;
}

export function openReview(input: {
  name: string;
  dueAt: string;
  unreviewedAction: 'revoke' | 'keep';
}): Promise<ReviewDetail> {
  return apiPost<ReviewDetail>('/access/reviews', input);
}

export function getReview(id: string): Promise<ReviewDetail> {
  return apiGet<ReviewDetail>(`/access/reviews/${segment(id)}`);
}

export function decideReviewItem(
  reviewId: string,
  itemId: string,
  decision: { decision: 'keep' | 'revoke'; comment?: string },
): Promise<ReviewItem> {
  return apiPost<ReviewItem>(
    `/access/reviews/${segment(reviewId)}/items/${segment(itemId)}`,
    decision,
  );
}

export function closeReview(id: string): Promise<ReviewDetail> {
  return apiPost<ReviewDetail>(`/access/reviews/${segment(id)}/close`);
}

/** Signed evidence of a campaign: the exact JSON text that was signed and its ECDSA signature. */
export interface SignedReviewReport {
  document: string;
  sha256: string;
  signature: string;
  signatureAlgorithm: string;
  signingKeyUri: string;
  publicKeyPem: string;
}

export function fetchReviewReport(id: string): Promise<SignedReviewReport> {
  return apiGet<SignedReviewReport>(`/access/reviews/${segment(id)}/report`);
}

/** Describes a scope for a table cell. */
export function scopeLabel(scope: Scope): string {
  return scope.type === 'appliance' ? 'Whole appliance' : `${scope.type} ${scope.id}`;
}

/** Describes the conditions of a grant in a few words, or returns '' when it has none. */
export function conditionsLabel(conditions: Conditions | null | undefined): string {
  if (!conditions) return '';
  const parts: string[] = [];
  if (conditions.sourceIps) parts.push(`from ${conditions.sourceIps.join(', ')}`);
  if (conditions.schedule) {
    const { days, from, to, timeZone } = conditions.schedule;
    parts.push(`${days ? `${days.join(', ')} ` : ''}${from}–${to} ${timeZone}`);
  }
  if (conditions.requireMfa) parts.push('needs MFA');
  if (conditions.requireTrustedDevice) parts.push('needs a trusted device');
  if (conditions.maxClassification) parts.push(`up to ${conditions.maxClassification}`);
  return parts.join('; ');
}
