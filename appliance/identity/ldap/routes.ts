import type { Transaction } from 'sequelize';
import { z } from 'zod';

import { problems, ProblemError } from '../../http/problem';
import { route, type RouteSpec } from '../../http/route';
import type { Database } from '../../platform/database';
import type { ApplianceConfig } from '../../platform/config';
import { assertLoginAllowed, presentUser, startSession } from '../login-steps';
import { secondFactorMethods, startMfaChallenge } from '../mfa-routes';
import { checkedUsername, OidcAccounts } from '../oidc/accounts';
import { roleForGroups } from '../oidc/role-mapping';
import type { IdentityService } from '../service';
import { LdapDirectory } from './directory';
import type { LdapSettings } from './settings';

const credentials = z.object({
  username: z.string().min(1).max(256),
  // An empty password makes an LDAP "unauthenticated bind" (RFC 4513 section 5.1.2),
  // which some servers report as a successful bind without checking anything.
  password: z.string().min(1).max(1024),
});

/** LDAP / Active Directory sign-in: POST /auth/ldap/login binds as the user and opens a session. */
export function ldapRoutes(
  identity: IdentityService,
  config: Pick<ApplianceConfig, 'ldap'>,
  database: Database,
): RouteSpec[] {
  const settings = config.ldap;
  const directory = settings ? new LdapDirectory(settings) : undefined;
  const accounts = new OidcAccounts(database, identity);

  return [
    route({
      method: 'post',
      path: '/auth/ldap/login',
      action: 'auth.ldap.login',
      resource: 'session',
      access: 'public',
      body: credentials,
      async handler(context) {
        if (!settings || !directory) throw notConfigured();

        // Only the characters a local name may contain pass. LDAP filter and DN characters
        // (`* ( ) \` NUL `, = +`) so never reach the directory, and the queries escape them too.
        const username = checkedUsername(context.body.username, 'username');
        context.actorUsername = username;
        await assertLoginAllowed(identity, context, username);

        const person = await directory.authenticate(username, context.body.password);
        if (!person) {
          await identity.throttle.recordFailure(username, context.sourceIp);
          throw problems.invalidCredentials();
        }
        context.auditNote = `ldap_subject=${person.subject}`;

        const role = roleForGroups(person.groups, settings);
        if (!role)
          throw problems.forbidden(
            'None of your directory groups grants access to this appliance; ask an admin to map one (LDAP_GROUP_ROLE_MAP).',
          );

        const linked = { issuer: issuerOf(settings), subject: person.subject, username, role };
        const provision = async (transaction: Transaction) => {
          const provisioned = await accounts.provision(linked, transaction);
          context.resourceId = provisioned.id;
          return provisioned;
        };

        // A directory password is one factor: a user who enrolled a second
        // factor here is asked for it, as at password sign-in.
        const existingId = await accounts.linkedUserId(linked);
        if (existingId && (await secondFactorMethods(identity, existingId)).length)
          return { body: await startMfaChallenge(identity, context, provision) };

        const user = await startSession(identity, context, provision);
        return { body: { user: presentUser(user) } };
      },
    }),
  ];
}

/**
 * Names the directory in account links: host and base DN, not the port or
 * scheme, so moving from ldap:// to ldaps:// keeps users linked.
 */
function issuerOf(settings: LdapSettings): string {
  return `ldap://${settings.url.hostname}/${settings.baseDn}`;
}

function notConfigured(): ProblemError {
  return new ProblemError(
    404,
    'ldap_not_configured',
    'LDAP sign-in is off',
    'This appliance has no LDAP directory; set LDAP_URL, LDAP_BASE_DN and a bind setting to turn it on.',
  );
}
