import type { Request } from 'express';

import { scimSchemas } from './schemas';
import type { Page, ScimGroupRecord, ScimStore, ScimUserRecord } from './store';

/** Absolute URL of the SCIM service root for this request, for `meta.location` and `$ref`. */
export function scimBaseUrl(request: Request): string {
  return `https://${request.get('host') ?? 'localhost'}/api/v1/scim/v2`;
}

export async function presentUser(user: ScimUserRecord, store: ScimStore, baseUrl: string) {
  const groups = await store.groupsOf(user.id);
  return {
    schemas: [scimSchemas.user],
    id: user.id,
    ...(user.externalId !== undefined ? { externalId: user.externalId } : {}),
    userName: user.userName,
    ...user.profile,
    active: user.active,
    groups: groups.map((group) => ({
      value: group.id,
      display: group.displayName,
      $ref: `${baseUrl}/Groups/${group.id}`,
      type: 'direct',
    })),
    // Not a SCIM attribute: the appliance role and disabled flag that the groups and `active` produced.
    'urn:prompt-bank-appliance:scim:account': { role: user.role, disabled: user.disabled },
    meta: {
      resourceType: 'User',
      created: user.created,
      lastModified: user.lastModified,
      location: `${baseUrl}/Users/${user.id}`,
    },
  };
}

export async function presentGroup(group: ScimGroupRecord, store: ScimStore, baseUrl: string) {
  const members = await store.namedMembersOf(group.id);
  return {
    schemas: [scimSchemas.group],
    id: group.id,
    ...(group.externalId !== undefined ? { externalId: group.externalId } : {}),
    displayName: group.displayName,
    members: members.map((member) => ({
      value: member.id,
      display: member.userName,
      $ref: `${baseUrl}/Users/${member.id}`,
      type: 'User',
    })),
    meta: {
      resourceType: 'Group',
      created: group.created,
      lastModified: group.lastModified,
      location: `${baseUrl}/Groups/${group.id}`,
    },
  };
}

/** Builds a ListResponse (RFC 7644 section 3.4.2) for one page. */
export function listResponse<T>(page: Page<unknown>, resources: T[], startIndex: number) {
  return {
    schemas: [scimSchemas.listResponse],
    totalResults: page.total,
    startIndex,
    itemsPerPage: resources.length,
    Resources: resources,
  };
}
