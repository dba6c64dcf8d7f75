import { problems } from '../../http/problem';
import { usernameFromClaims, type ProviderIdentity } from '../oidc/accounts';
import { groupsClaim, roleForGroups } from '../oidc/role-mapping';
import type { VerifiedAssertion } from './service-provider';
import type { SamlSettings } from './settings';

/**
 * Prefix of the issuer under which SAML users are linked. It keeps a SAML
 * entity id apart from an OpenID Connect issuer with the same URL, as some
 * providers use one URL for both.
 */
const linkIssuerPrefix = 'saml:';

/**
 * Turns a verified assertion into the identity the shared provisioning code
 * (OidcAccounts.provision) links by issuer and subject. Throws 403 when the
 * assertion gives no usable user name or no group maps to a role.
 */
export function identityFromAssertion(
  assertion: VerifiedAssertion,
  settings: Pick<
    SamlSettings,
    'usernameAttribute' | 'groupAttribute' | 'groupRoleMap' | 'defaultRole'
  >,
): ProviderIdentity {
  const username = usernameFromClaims({
    preferred_username: settings.usernameAttribute
      ? firstValue(assertion.attributes[settings.usernameAttribute])
      : assertion.nameId,
    email: firstValue(assertion.attributes.email),
  });
  if (!username)
    throw problems.forbidden(
      `The identity provider sent no usable user name (${settings.usernameAttribute ? `attribute ${settings.usernameAttribute}` : 'NameID'}); ask its administrator to release one, or set SAML_USERNAME_ATTRIBUTE.`,
    );

  const role = roleForGroups(groupsClaim(assertion.attributes[settings.groupAttribute]), settings);
  if (!role)
    throw problems.forbidden(
      `None of your groups (attribute ${settings.groupAttribute}) grants access to this appliance; ask an admin to map one (SAML_GROUP_ROLE_MAP).`,
    );

  return {
    issuer: linkIssuerPrefix + assertion.issuer,
    subject: assertion.nameId,
    username,
    role,
  };
}

/** node-saml gives a single-valued attribute as a string and a multi-valued one as a list. */
function firstValue(value: unknown): unknown {
  return Array.isArray(value) ? value[0] : value;
}
