import { parseGroupRoleMap, type GroupRoleMapping } from '../oidc/role-mapping';

/**
 * Reads SCIM_GROUP_ROLE_MAP, or OIDC_GROUP_ROLE_MAP when it is unset, because
 * the identity provider that pushes SCIM groups usually also signs users in
 * with OpenID Connect under the same group names. There is no default role: a
 * SCIM user in no mapped group is disabled.
 */
export function readScimSettings(env: NodeJS.ProcessEnv): GroupRoleMapping {
  if (env.SCIM_GROUP_ROLE_MAP)
    return { groupRoleMap: parseGroupRoleMap('SCIM_GROUP_ROLE_MAP', env.SCIM_GROUP_ROLE_MAP) };
  return { groupRoleMap: parseGroupRoleMap('OIDC_GROUP_ROLE_MAP', env.OIDC_GROUP_ROLE_MAP) };
}
