import type { Transaction } from 'sequelize';

import type { Database } from '../../platform/database';
import type { Permission, Role } from '../permissions';
import { failedCondition, type Conditions, type RequestAttributes } from './conditions';
import { GrantStore, type Grant } from './grants';
import { RoleCatalogue } from './roles';
import {
  applianceScope,
  describeScope,
  scopeCovers,
  type ResourceDescriptor,
  type Scope,
} from './scope';

/** The requesting user and their base role. */
export interface Subject {
  userId: string;
  role: Role;
  /** Set when the credential (an API key) is limited to these projects. */
  projectIds?: readonly string[];
}

/** One source of permissions after roles, inheritance and delegation are resolved. */
export interface EffectiveGrant {
  /** `base-role` for the user's base role, else the grant id. */
  id: string;
  source: 'base-role' | Grant['source'];
  role: string | null;
  permissions: ReadonlySet<Permission>;
  scope: Scope;
  /** All must hold; a delegation carries its own and those of the delegator's grant. */
  conditions: readonly Conditions[];
  expiresAt: string | null;
}

export interface Decision {
  allowed: boolean;
  /** The grant that allowed, or a sentence saying why nothing did. */
  grantId?: string;
  reason?: string;
}

/**
 * The one place that decides access. A request is allowed when one of the
 * user's effective grants contains the permission, reaches the resource's scope
 * and meets its conditions. Without a resource (the route-level check) any
 * scope will do; handlers then check the resource they touch.
 */
export class AccessControl {
  readonly roles: RoleCatalogue;
  readonly grants: GrantStore;

  constructor(readonly database: Database) {
    this.roles = new RoleCatalogue(database);
    this.grants = new GrantStore(database);
  }

  async open(): Promise<void> {
    await this.roles.load();
  }

  /** Loads a subject's grants once, for all decisions of one request. */
  async viewFor(
    subject: Subject,
    attributes: RequestAttributes,
    transaction?: Transaction,
  ): Promise<AccessView> {
    return new AccessView(
      subject,
      attributes,
      await this.effectiveGrants(subject, attributes.at, transaction),
    );
  }

  /** The user's base role, live grants and delegations, expanded to permissions. */
  async effectiveGrants(
    subject: Subject,
    at: Date,
    transaction?: Transaction,
  ): Promise<EffectiveGrant[]> {
    const stored = await this.grants.activeFor(subject.userId, at, transaction);
    const own = [
      this.baseGrant(subject),
      ...stored.filter((grant) => grant.source !== 'delegation').map((grant) => this.expand(grant)),
    ];

    const delegated: EffectiveGrant[] = [];
    for (const delegation of stored.filter((grant) => grant.source === 'delegation')) {
      delegated.push(...(await this.cutDelegation(delegation, at, transaction)));
    }
    return [...own, ...delegated];
  }

  /** Grants of a user that a delegation may draw on: base role and direct grants, never other delegations. */
  async delegableGrants(
    subject: Subject,
    at: Date,
    transaction?: Transaction,
  ): Promise<EffectiveGrant[]> {
    const stored = await this.grants.activeFor(subject.userId, at, transaction);
    return [
      this.baseGrant(subject),
      ...stored.filter((grant) => grant.source === 'grant').map((grant) => this.expand(grant)),
    ];
  }

  private baseGrant(subject: Subject): EffectiveGrant {
    return {
      id: 'base-role',
      source: 'base-role',
      role: subject.role,
      permissions: this.roles.permissionsOf(subject.role),
      scope: applianceScope,
      conditions: [],
      expiresAt: null,
    };
  }

  private expand(grant: Grant): EffectiveGrant {
    return {
      id: grant.id,
      source: grant.source,
      role: grant.role,
      permissions: grant.role
        ? this.roles.permissionsOf(grant.role)
        : new Set(grant.permissions ?? []),
      scope: grant.scope,
      conditions: grant.conditions ? [grant.conditions] : [],
      expiresAt: grant.expiresAt,
    };
  }

  /**
   * A delegation is worth only what the delegator still holds: each of the
   * delegator's grants that contains the delegated scope lends its share of
   * the delegated permissions, under both sets of conditions.
   */
  private async cutDelegation(
    delegation: Grant,
    at: Date,
    transaction?: Transaction,
  ): Promise<EffectiveGrant[]> {
    if (!delegation.grantedBy) return [];
    const delegator = await this.subjectOf(delegation.grantedBy, transaction);
    if (!delegator) return [];

    const result: EffectiveGrant[] = [];
    for (const lender of await this.delegableGrants(delegator, at, transaction)) {
      if (!scopeContains(lender.scope, delegation.scope)) continue;
      const shared = (delegation.permissions ?? []).filter((permission) =>
        lender.permissions.has(permission),
      );
      if (!shared.length) continue;
      result.push({
        id: delegation.id,
        source: 'delegation',
        role: null,
        permissions: new Set(shared),
        scope: delegation.scope,
        conditions: [
          ...(delegation.conditions ? [delegation.conditions] : []),
          ...lender.conditions,
        ],
        expiresAt: earliest(delegation.expiresAt, lender.expiresAt),
      });
    }
    return result;
  }

  private async subjectOf(userId: string, transaction?: Transaction): Promise<Subject | undefined> {
    const rows = await this.grants.userRole(userId, transaction);
    return rows && !rows.disabled ? { userId, role: rows.role } : undefined;
  }
}

/** Decisions for one subject and request, over grants loaded once. */
export class AccessView {
  constructor(
    readonly subject: Subject,
    readonly attributes: RequestAttributes,
    readonly grants: readonly EffectiveGrant[],
  ) {}

  decide(permission: Permission, resource?: ResourceDescriptor): Decision {
    const outsideProjects = this.outsideCredentialProjects(permission, resource);
    if (outsideProjects) return { allowed: false, reason: outsideProjects };

    const holding = this.grants.filter((grant) => grant.permissions.has(permission));
    if (!holding.length)
      return {
        allowed: false,
        reason: `The role "${this.subject.role}" and your other grants do not include ${permission}; ask an admin for a role or grant that does.`,
      };

    const reaching = resource
      ? holding.filter((grant) => scopeCovers(grant.scope, resource))
      : holding;
    if (!reaching.length) {
      const scopes = [...new Set(holding.map((grant) => describeScope(grant.scope)))];
      return {
        allowed: false,
        reason: `Your grants of ${permission} apply to ${scopes.join(', ')}, not to this resource; ask for a grant at its scope.`,
      };
    }

    const attributes = resource?.classification
      ? { ...this.attributes, classification: resource.classification }
      : this.attributes;
    const failures: string[] = [];
    for (const grant of reaching) {
      const failed = grant.conditions
        .map((conditions) => failedCondition(conditions, attributes))
        .find(Boolean);
      if (!failed) return { allowed: true, grantId: grant.id };
      failures.push(failed);
    }
    // Every grant that could have allowed failed: name each distinct reason.
    const reasons = [...new Set(failures)];
    return {
      allowed: false,
      reason:
        reasons.length === 1
          ? `Your grant of ${permission} does not apply to this request: ${reasons[0]}.`
          : `None of your ${reasons.length} grants of ${permission} applies to this request: ${reasons.map((reason, index) => `${index + 1}) ${reason}`).join('; ')}.`,
    };
  }

  /**
   * Explains why a project-limited credential may not make this request:
   * such a key reaches prompts only, and only those in its projects.
   */
  private outsideCredentialProjects(
    permission: Permission,
    resource?: ResourceDescriptor,
  ): string | undefined {
    const limit = this.subject.projectIds;
    if (!limit) return undefined;

    const projects = limit.join(', ');
    if (!permission.startsWith('prompts:'))
      return `This API key is limited to projects ${projects} and reaches prompts only; use a key without projects for ${permission}.`;
    if (resource && !(resource.projectId && limit.includes(resource.projectId)))
      return `This API key is limited to projects ${projects}; this prompt is in ${resource.projectId ? `project ${resource.projectId}` : 'no project'}.`;
    return undefined;
  }

  allows(permission: Permission, resource?: ResourceDescriptor): boolean {
    return this.decide(permission, resource).allowed;
  }

  /** Lists every permission of a grant whose conditions are met now, at any scope. */
  permissions(): Permission[] {
    const held = new Set<Permission>();
    for (const grant of this.grants) {
      if (grant.conditions.some((conditions) => failedCondition(conditions, this.attributes)))
        continue;
      for (const permission of grant.permissions) held.add(permission);
    }
    return [...held].sort();
  }
}

/** Tells whether a grant at `outer` covers everything a grant at `inner` covers. */
export function scopeContains(outer: Scope, inner: Scope): boolean {
  if (outer.type === 'appliance') return true;
  return outer.type === inner.type && outer.id === (inner as { id: string }).id;
}

function earliest(a: string | null, b: string | null): string | null {
  if (!a) return b;
  if (!b) return a;
  return a < b ? a : b;
}
