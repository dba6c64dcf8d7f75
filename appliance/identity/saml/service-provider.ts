import {
  SAML,
  SamlStatusError,
  ValidateInResponseTo,
  type CacheItem,
  type CacheProvider,
  type Profile,
} from '@node-saml/node-saml';

import { ProblemError } from '../../http/problem';
import { logger } from '../../platform/logger';
import type { SamlLoginAttempt } from './login-attempts';
import type { SamlSettings } from './settings';

/** The two URLs that name this appliance to the identity provider. */
export interface ServiceProviderUrls {
  spEntityId: string;
  acsUrl: string;
}

/** A response whose signature, audience, times and InResponseTo all passed. */
export interface VerifiedAssertion {
  /** The assertion's `<Issuer>`: the identity provider's entity id. */
  issuer: string;
  nameId: string;
  nameIdFormat?: string;
  assertionId: string;
  /** Conditions NotOnOrAfter, after which the time check rejects the assertion anyway. */
  expiresAt: Date;
  attributes: Record<string, unknown>;
}

const transientNameIdFormat = 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient';

const loginRoute = 'GET /api/v1/auth/saml/login';

/**
 * The appliance as a SAML 2.0 service provider, built on @node-saml/node-saml.
 * A SAML instance is built per request because its entity id and ACS URL
 * depend on the listening address, and because its request cache is the one
 * pending attempt the request is about.
 */
export class ServiceProvider {
  constructor(private readonly settings: SamlSettings) {}

  /** Builds the redirect-binding URL of a fresh AuthnRequest and returns it with the request's ID and IssueInstant. */
  async start(
    urls: ServiceProviderUrls,
    relayState: string,
  ): Promise<{ url: URL; requestId: string; issuedAt: string }> {
    const cache = new PendingRequest();
    const url = await this.saml(urls, cache).getAuthorizeUrlAsync(relayState, undefined, {});
    if (!cache.saved) throw new Error('node-saml did not record the AuthnRequest ID');
    return { url: new URL(url), requestId: cache.saved.id, issuedAt: cache.saved.instant };
  }

  /**
   * Verifies an HTTP-POST binding response against the pending `attempt`.
   * Throws a ProblemError naming the check that failed.
   */
  async finish(samlResponse: string, attempt: SamlLoginAttempt): Promise<VerifiedAssertion> {
    const cache = new PendingRequest({ id: attempt.requestId, instant: attempt.issuedAt });
    const saml = this.saml(attempt, cache);

    let profile: Profile | null;
    try {
      ({ profile } = await saml.validatePostResponseAsync({ SAMLResponse: samlResponse }));
    } catch (error) {
      throw responseProblem(error);
    }
    if (!profile) throw invalidResponse('The response carries no assertion.');
    return this.verified(profile);
  }

  /** Returns the SP metadata XML for the identity provider's administrator. */
  metadata(urls: ServiceProviderUrls): string {
    return this.saml(urls, new PendingRequest()).generateServiceProviderMetadata(null, null);
  }

  private saml(urls: ServiceProviderUrls, cache: PendingRequest): SAML {
    return new SAML({
      entryPoint: this.settings.idpSsoUrl.href,
      idpCert: this.settings.idpCertificate,
      issuer: urls.spEntityId,
      audience: urls.spEntityId,
      callbackUrl: urls.acsUrl,
      // Either the response or the assertion must carry a valid signature by
      // the configured certificate; node-saml rejects a response with neither.
      wantAuthnResponseSigned: false,
      wantAssertionsSigned: false,
      validateInResponseTo: ValidateInResponseTo.always,
      cacheProvider: cache,
      acceptedClockSkewMs: this.settings.clockSkewSeconds * 1000,
      // Let the provider choose the NameID format and the authentication
      // method, so its own MFA policy applies.
      identifierFormat: null,
      disableRequestedAuthnContext: true,
    });
  }

  private verified(profile: Profile): VerifiedAssertion {
    const assertion = (profile.getAssertion?.() ?? {}) as {
      Assertion?: { $?: { ID?: string }; Conditions?: { $?: { NotOnOrAfter?: string } }[] };
    };
    const assertionId = assertion.Assertion?.$?.ID;
    const notOnOrAfter = assertion.Assertion?.Conditions?.[0]?.$?.NotOnOrAfter;
    const expiresAt = notOnOrAfter ? new Date(notOnOrAfter) : undefined;

    if (!assertionId) throw invalidResponse('The assertion has no ID attribute.');
    if (!expiresAt || Number.isNaN(expiresAt.getTime()))
      throw invalidResponse(
        'The assertion has no valid Conditions NotOnOrAfter, so its lifetime is unbounded.',
      );
    if (!profile.issuer) throw invalidResponse('The assertion has no Issuer.');
    if (this.settings.idpEntityId && profile.issuer !== this.settings.idpEntityId)
      throw invalidResponse(
        `The assertion was issued by ${JSON.stringify(profile.issuer)}, not by SAML_IDP_ENTITY_ID.`,
      );
    if (!profile.nameID) throw invalidResponse('The assertion has no NameID.');
    // A transient NameID changes at every sign-in, so it cannot link a local account.
    if (profile.nameIDFormat === transientNameIdFormat)
      throw invalidResponse(
        'The NameID is transient; configure the identity provider to send a persistent, email or unspecified NameID.',
      );

    return {
      issuer: profile.issuer,
      nameId: profile.nameID,
      nameIdFormat: profile.nameIDFormat,
      assertionId,
      expiresAt,
      attributes: (profile.attributes ?? {}) as Record<string, unknown>,
    };
  }
}

/**
 * node-saml's request cache, narrowed to the one AuthnRequest a request is
 * about. At login it records the new request's ID. At the ACS it contains only
 * the pending attempt's ID, so any other InResponseTo is rejected.
 */
class PendingRequest implements CacheProvider {
  saved?: { id: string; instant: string };

  constructor(private pending?: { id: string; instant: string }) {}

  saveAsync(key: string, value: string): Promise<CacheItem | null> {
    this.saved = { id: key, instant: value };
    return Promise.resolve({ value, createdAt: Date.now() });
  }

  getAsync(key: string): Promise<string | null> {
    return Promise.resolve(this.pending?.id === key ? this.pending.instant : null);
  }

  removeAsync(key: string | null): Promise<string | null> {
    if (!this.pending || this.pending.id !== key) return Promise.resolve(null);
    const { instant } = this.pending;
    this.pending = undefined;
    return Promise.resolve(instant);
  }
}

/** Maps a node-saml rejection to a 401 problem whose code names the failed check. */
function responseProblem(error: unknown): ProblemError {
  const message = error instanceof Error ? error.message : String(error);
  logger.info({ err: { name: (error as Error)?.name, message } }, 'SAML response rejected');

  if (error instanceof SamlStatusError)
    return rejection(
      'saml_sign_in_refused',
      'Sign-in refused',
      'The identity provider did not authenticate you.',
    );
  if (/InResponseTo/i.test(message))
    return rejection(
      'saml_unsolicited_response',
      'Unsolicited SAML response',
      'The response does not answer the sign-in this browser started (InResponseTo does not match).',
    );
  if (/signature/i.test(message))
    return rejection(
      'saml_signature_invalid',
      'Invalid SAML signature',
      'Neither the response nor the assertion carries a valid signature by the certificate in SAML_IDP_CERT_FILE.',
    );
  if (/audience/i.test(message))
    return rejection(
      'saml_audience_mismatch',
      'Wrong SAML audience',
      "The assertion is not addressed to this appliance's entity id; check the SP entity id configured at the identity provider.",
    );
  // node-saml reports a SubjectConfirmationData outside its time window as
  // "No valid subject confirmation found" (version 5), since time is all it checks there.
  if (/expired|not yet valid|no valid subject confirmation/i.test(message))
    return rejection(
      'saml_assertion_expired',
      'SAML assertion expired',
      'The assertion is outside its NotBefore/NotOnOrAfter window; check both clocks or raise SAML_CLOCK_SKEW_SECONDS.',
    );
  return invalidResponse('The response could not be parsed as a SAML 2.0 response.');
}

function invalidResponse(reason: string): ProblemError {
  return rejection('saml_response_invalid', 'Invalid SAML response', reason);
}

function rejection(code: string, title: string, reason: string): ProblemError {
  return new ProblemError(401, code, title, `${reason} Start again at ${loginRoute}.`);
}

/** Builds the problem for an assertion ID that already opened a session. */
export function replayedAssertion(): ProblemError {
  return rejection(
    'saml_assertion_replayed',
    'SAML assertion replayed',
    'This assertion was already used to sign in.',
  );
}
