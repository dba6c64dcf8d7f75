import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Transaction } from 'sequelize';
import { z } from 'zod';

import { problems } from '../../http/problem';
import { route, type RouteContext, type RouteSpec } from '../../http/route';
import { assertLoginAllowed } from '../login-steps';
import { completeMfaChallenge, resolveMfaChallenge } from '../mfa-routes';
import { requireSignInGuards, type SignInGuards } from '../risk/sign-in-guards';
import type { IdentityService } from '../service';
import { ceremonySeconds } from './ceremonies';
import { CredentialConflictError, presentCredential, type StoredCredential } from './credentials';
import {
  checkAssertion,
  checkRegistration,
  invalidAssertion,
  invalidAssertionCode,
} from './verify';

type AnyContext = RouteContext<unknown, unknown, unknown>;

const base64url = z.string().regex(/^[A-Za-z0-9_-]*$/, 'must be base64url without padding');

/** Fields that PublicKeyCredential.toJSON() returns for both ceremonies. */
const publicKeyCredentialFields = {
  id: base64url.min(1).max(1400),
  rawId: base64url.min(1).max(1400),
  type: z.literal('public-key'),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
};

/** The JSON form of a PublicKeyCredential from navigator.credentials.create(). */
const registrationResponse = z.looseObject({
  ...publicKeyCredentialFields,
  response: z.looseObject({
    clientDataJSON: base64url.min(1),
    attestationObject: base64url.min(1),
    transports: z.array(z.string().max(32)).max(8).optional(),
  }),
});

/** The JSON form of a PublicKeyCredential from navigator.credentials.get(). */
const authenticationResponse = z.looseObject({
  ...publicKeyCredentialFields,
  response: z.looseObject({
    clientDataJSON: base64url.min(1),
    authenticatorData: base64url.min(1),
    signature: base64url.min(1),
    userHandle: base64url.optional(),
  }),
});

const credentialName = z.string().trim().min(1).max(64);
const credentialId = z.object({ id: z.uuid() });

/**
 * Throws a 403 problem unless the session passed a second factor, for a user
 * who has one: a stolen password alone must not add or remove security keys.
 */
async function assertSecondFactorSession(
  identity: IdentityService,
  guards: SignInGuards,
  context: AnyContext,
): Promise<void> {
  const principal = context.principal!;
  const hasTotp = await identity.totp.isActive(principal.userId);
  const hasKeys = (await guards.credentials.countFor(principal.userId)) > 0;
  if (!hasTotp && !hasKeys) return;
  if (await guards.sessionFactors.methodOf(principal.sessionToken)) return;

  throw problems.forbidden(
    'This session did not pass a second factor; verify with POST /api/v1/auth/mfa/webauthn/step-up/options and .../step-up/verify, or sign in again with your second factor.',
  );
}

/** Returns the session token that binds a ceremony, or throws a 403 problem for a request without a session. */
function sessionTokenOf(context: AnyContext): string {
  const token = context.principal?.sessionToken;
  if (!token)
    throw problems.forbidden(
      'Security key routes need a console session; sign in with username and password.',
    );
  return token;
}

/** Issues authentication options for the user's keys and stores the challenge under `binding`. */
async function beginAssertion(
  guards: SignInGuards,
  context: AnyContext,
  purpose: 'sign-in' | 'step-up',
  binding: string,
  userId: string,
) {
  const credentials = await guards.credentials.listFor(userId);
  if (!credentials.length)
    throw problems.conflict(
      'This account has no security key; register one with POST /api/v1/auth/mfa/webauthn/register/options, or use another second factor.',
    );

  const options = await generateAuthenticationOptions({
    rpID: guards.settings.webauthn.rpId,
    allowCredentials: credentials.map((credential) => ({
      id: credential.credentialId,
      transports: credential.transports,
    })),
    userVerification: 'preferred',
    timeout: ceremonySeconds * 1000,
  });
  await context.commit((transaction) =>
    guards.ceremonies.begin(purpose, binding, userId, options.challenge, transaction),
  );
  return options;
}

/** Security key registration, management, sign-in and step-up. */
export function webauthnRoutes(identity: IdentityService): RouteSpec[] {
  return [
    route({
      method: 'post',
      path: '/auth/mfa/webauthn/register/options',
      action: 'auth.webauthn.register.options',
      resource: 'user',
      access: 'signed-in',
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const principal = context.principal!;
        context.resourceId = principal.userId;
        await assertSecondFactorSession(identity, guards, context);

        const existing = await guards.credentials.listFor(principal.userId);
        const options = await generateRegistrationOptions({
          rpName: guards.settings.webauthn.rpName,
          rpID: guards.settings.webauthn.rpId,
          userName: principal.username,
          userID: new TextEncoder().encode(principal.userId),
          attestationType: 'none',
          excludeCredentials: existing.map((credential) => ({
            id: credential.credentialId,
            transports: credential.transports,
          })),
          authenticatorSelection: { residentKey: 'discouraged', userVerification: 'preferred' },
          timeout: ceremonySeconds * 1000,
        });
        await context.commit((transaction) =>
          guards.ceremonies.begin(
            'registration',
            sessionTokenOf(context),
            principal.userId,
            options.challenge,
            transaction,
          ),
        );
        return { body: options };
      },
    }),

    route({
      method: 'post',
      path: '/auth/mfa/webauthn/register/verify',
      action: 'auth.webauthn.register',
      resource: 'user',
      access: 'signed-in',
      body: z.object({
        name: credentialName.default('Security key'),
        response: registrationResponse,
      }),
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const principal = context.principal!;
        context.resourceId = principal.userId;
        await assertSecondFactorSession(identity, guards, context);

        const challenge = await guards.ceremonies.take(
          'registration',
          sessionTokenOf(context),
          principal.userId,
        );
        if (!challenge)
          throw problems.invalidRequest(
            'response: no security key registration is pending for this session, or it expired; request new options first.',
            [{ field: 'response', message: 'no pending registration' }],
          );

        const registration = await checkRegistration(guards.settings.webauthn, {
          challenge,
          response: context.body.response as unknown as RegistrationResponseJSON,
          localPort: context.request.socket.localPort,
        });
        try {
          const created = await context.commit(async (transaction) => {
            const stored = await guards.credentials.add(
              {
                userId: principal.userId,
                name: context.body.name,
                credentialId: registration.credential.id,
                publicKey: registration.credential.publicKey,
                counter: registration.credential.counter,
                transports: registration.credential.transports ?? [],
                deviceType: registration.credentialDeviceType,
                backedUp: registration.credentialBackedUp,
              },
              transaction,
            );
            context.auditNote = `webauthn_credential=${stored.id}`;
            return stored;
          });
          return { status: 201, body: presentCredential(created) };
        } catch (error) {
          if (error instanceof CredentialConflictError) throw problems.conflict(error.message);
          throw error;
        }
      },
    }),

    route({
      method: 'get',
      path: '/auth/mfa/webauthn/credentials',
      action: 'auth.webauthn.list',
      resource: 'user',
      access: 'signed-in',
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const credentials = await guards.credentials.listFor(context.principal!.userId);
        return { body: { items: credentials.map(presentCredential) } };
      },
    }),

    route({
      method: 'patch',
      path: '/auth/mfa/webauthn/credentials/:id',
      action: 'auth.webauthn.rename',
      resource: 'webauthn_credential',
      access: 'signed-in',
      params: credentialId,
      body: z.object({ name: credentialName }).strict(),
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const userId = context.principal!.userId;
        const renamed = await context.commit((transaction) =>
          guards.credentials.rename(userId, context.params.id, context.body.name, transaction),
        );
        if (!renamed) throw problems.notFound(`Security key ${context.params.id}`);
      },
    }),

    route({
      method: 'delete',
      path: '/auth/mfa/webauthn/credentials/:id',
      action: 'auth.webauthn.delete',
      resource: 'webauthn_credential',
      access: 'signed-in',
      params: credentialId,
      async handler(context) {
        const guards = requireSignInGuards(identity);
        await assertSecondFactorSession(identity, guards, context);
        const userId = context.principal!.userId;
        const removed = await context.commit((transaction) =>
          guards.credentials.remove(userId, context.params.id, transaction),
        );
        if (!removed) throw problems.notFound(`Security key ${context.params.id}`);
      },
    }),

    route({
      method: 'post',
      path: '/auth/mfa/webauthn/options',
      action: 'auth.mfa.webauthn.options',
      resource: 'session',
      access: 'public',
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const pending = await resolveMfaChallenge(identity, context);
        const options = await beginAssertion(
          guards,
          context,
          'sign-in',
          pending.token,
          pending.user.id,
        );
        return { body: options };
      },
    }),

    route({
      method: 'post',
      path: '/auth/mfa/webauthn/verify',
      action: 'auth.mfa.webauthn.verify',
      resource: 'session',
      access: 'public',
      body: z.object({ response: authenticationResponse }),
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const pending = await resolveMfaChallenge(identity, context);
        await assertLoginAllowed(identity, context, pending.user.username);

        const challenge = await guards.ceremonies.take('sign-in', pending.token, pending.user.id);
        const outcome = await checkAssertion(guards.settings.webauthn, guards.credentials, {
          userId: pending.user.id,
          challenge,
          response: context.body.response as unknown as AuthenticationResponseJSON,
          localPort: context.request.socket.localPort,
        });

        const body = await completeMfaChallenge(
          identity,
          context,
          pending,
          'webauthn',
          async (transaction) => {
            if (outcome.rejection) throw outcome.rejection;
            await storeCounter(guards, outcome.credential, outcome.newCounter, transaction);
            context.auditNote = `webauthn_credential=${outcome.credential.id}`;
          },
          invalidAssertionCode,
        );
        return { body };
      },
    }),

    route({
      method: 'post',
      path: '/auth/mfa/webauthn/step-up/options',
      action: 'auth.webauthn.step_up.options',
      resource: 'session',
      access: 'signed-in',
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const principal = context.principal!;
        const options = await beginAssertion(
          guards,
          context,
          'step-up',
          sessionTokenOf(context),
          principal.userId,
        );
        return { body: options };
      },
    }),

    route({
      method: 'post',
      path: '/auth/mfa/webauthn/step-up/verify',
      action: 'auth.webauthn.step_up',
      resource: 'session',
      access: 'signed-in',
      body: z.object({ response: authenticationResponse }),
      async handler(context) {
        const guards = requireSignInGuards(identity);
        const principal = context.principal!;
        const token = sessionTokenOf(context);

        const challenge = await guards.ceremonies.take('step-up', token, principal.userId);
        const outcome = await checkAssertion(guards.settings.webauthn, guards.credentials, {
          userId: principal.userId,
          challenge,
          response: context.body.response as unknown as AuthenticationResponseJSON,
          localPort: context.request.socket.localPort,
        });
        if (outcome.rejection) throw outcome.rejection;

        await context.commit(async (transaction) => {
          await storeCounter(guards, outcome.credential, outcome.newCounter, transaction);
          await guards.sessionFactors.record(token, principal.userId, 'webauthn', transaction);
          context.auditNote = `webauthn_credential=${outcome.credential.id}`;
        });
        return { body: { secondFactor: 'webauthn' } };
      },
    }),
  ];
}

/** Stores the new signature counter, rejecting the assertion when another request used the credential first. */
async function storeCounter(
  guards: SignInGuards,
  credential: StoredCredential,
  newCounter: number,
  transaction: Transaction,
): Promise<void> {
  const stored = await guards.credentials.recordUse(credential, newCounter, transaction);
  if (!stored)
    throw invalidAssertion(
      'This security key was used by another request at the same time; request new options and try again.',
    );
}
