import { z } from 'zod';

/** The reach of a grant: the whole appliance, one project, or one folder and the folders under it. */
export type Scope =
  { type: 'appliance' } | { type: 'project'; id: string } | { type: 'folder'; id: string };

export const scopeSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('appliance') }).strict(),
  z.object({ type: z.literal('project'), id: z.uuid() }).strict(),
  z.object({ type: z.literal('folder'), id: z.uuid() }).strict(),
]);

export const applianceScope: Scope = { type: 'appliance' };

/** Data classification labels, from least to most sensitive; the index is the rank. */
export const classifications = ['public', 'internal', 'confidential', 'restricted'] as const;
export type Classification = (typeof classifications)[number];

/**
 * The facts about a resource that a decision needs: the
 * project it belongs to, its folder and that folder's ancestors (nearest
 * first), and its classification label.
 */
export interface ResourceDescriptor {
  projectId?: string | null;
  folderIds?: readonly string[];
  classification?: Classification;
}

/** Tells whether a grant at `scope` reaches `resource`. */
export function scopeCovers(scope: Scope, resource: ResourceDescriptor): boolean {
  switch (scope.type) {
    case 'appliance':
      return true;
    case 'project':
      return resource.projectId === scope.id;
    case 'folder':
      return resource.folderIds?.includes(scope.id) ?? false;
  }
}

/** Stored form of a scope: one column for the type, one for the id. */
export function scopeColumns(scope: Scope): { scope_type: string; scope_id: string | null } {
  return { scope_type: scope.type, scope_id: scope.type === 'appliance' ? null : scope.id };
}

export function scopeFromColumns(type: string, id: string | null): Scope {
  if (type === 'project' && id) return { type, id };
  if (type === 'folder' && id) return { type, id };
  return applianceScope;
}

export function describeScope(scope: Scope): string {
  return scope.type === 'appliance' ? 'the appliance' : `${scope.type} ${scope.id}`;
}
