import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import { SignedXml } from 'xml-crypto';

/** An RSA key pair with a self-signed certificate, both PEM, made by the openssl CLI. */
export interface SigningKey {
  privateKey: string;
  certificate: string;
  certificateFile: string;
}

/** Plan of the test identity provider's next responses. Every optional field has a valid default. */
export interface ResponsePlan {
  nameId: string;
  nameIdFormat?: string;
  attributes: Record<string, string[]>;
  /** Signing key. `other` is a key the appliance does not trust. */
  signingKey?: 'idp' | 'other';
  /** Element that carries the signature. */
  signed?: 'assertion' | 'response';
  /** Audience; default the AuthnRequest's Issuer (the SP entity id). */
  audience?: string;
  /** Validity window relative to now, in seconds. */
  notBeforeSeconds?: number;
  notOnOrAfterSeconds?: number;
  /** InResponseTo to send; default the AuthnRequest's ID, null leaves it out (unsolicited). */
  inResponseTo?: string | null;
  /** Fixed assertion ID, to issue the same assertion twice. */
  assertionId?: string;
  /** Second-level status code of an unsigned error response without assertion, such as `AuthnFailed`. */
  failureStatus?: string;
  /** Applied to the XML after signing, as an attacker on the way would. */
  tamper?: (xml: string) => string;
}

export interface TestIdentityProvider {
  entityId: string;
  ssoUrl: string;
  trusted: SigningKey;
  untrusted: SigningKey;
  /** The plan for every following response. */
  plan: ResponsePlan;
  /** The last AuthnRequest the provider decoded. */
  lastRequest?: { id: string; issuer: string; acsUrl: string };
  close(): Promise<void>;
}

const rsaSha256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';
const sha256Digest = 'http://www.w3.org/2001/04/xmlenc#sha256';
const exclusiveC14n = 'http://www.w3.org/2001/10/xml-exc-c14n#';
const envelopedSignature = 'http://www.w3.org/2000/09/xmldsig#enveloped-signature';
const persistentFormat = 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent';

/** Makes a throwaway 2048-bit RSA key and a one-day self-signed certificate with `openssl req`. */
export function makeSigningKey(directory: string, name: string): SigningKey {
  const keyFile = path.join(directory, `${name}.key`);
  const certificateFile = path.join(directory, `${name}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      keyFile,
      '-out',
      certificateFile,
    ],
    { stdio: 'pipe' },
  );
  return {
    privateKey: fs.readFileSync(keyFile, 'utf8'),
    certificate: fs.readFileSync(certificateFile, 'utf8'),
    certificateFile,
  };
}

/**
 * Starts a small SAML identity provider on 127.0.0.1. GET /sso decodes a
 * redirect-binding AuthnRequest and responds with the HTTP-POST binding's
 * auto-submit form, holding a response built from `plan` and signed with
 * xml-crypto. Nobody signs in: the plan says who the user is.
 */
export async function startTestIdentityProvider(): Promise<TestIdentityProvider> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'saml-idp-'));
  const trusted = makeSigningKey(directory, 'test-idp');
  const untrusted = makeSigningKey(directory, 'other-idp');

  const server = http.createServer((request, response) => {
    try {
      const url = new URL(request.url ?? '/', provider.entityId);
      if (url.pathname !== '/sso') {
        response.statusCode = 404;
        response.end('not found');
        return;
      }
      const authnRequest = decodeAuthnRequest(url.searchParams.get('SAMLRequest') ?? '');
      provider.lastRequest = authnRequest;

      const samlResponse = buildResponse(provider, authnRequest);
      response.setHeader('content-type', 'text/html; charset=utf-8');
      response.end(
        `<html><body><form method="post" action="${authnRequest.acsUrl}">` +
          `<input type="hidden" name="SAMLResponse" value="${samlResponse}">` +
          `<input type="hidden" name="RelayState" value="${url.searchParams.get('RelayState') ?? ''}">` +
          '</form></body></html>',
      );
    } catch (error) {
      response.statusCode = 400;
      response.end(String(error));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider: TestIdentityProvider = {
    entityId: origin,
    ssoUrl: `${origin}/sso`,
    trusted,
    untrusted,
    plan: { nameId: 'nobody', attributes: {} },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        fs.rmSync(directory, { recursive: true, force: true });
      }),
  };
  return provider;
}

/** Reads the ID, Issuer and ACS URL of a deflated, base64 AuthnRequest; enough for the XML node-saml writes. */
function decodeAuthnRequest(encoded: string): { id: string; issuer: string; acsUrl: string } {
  const xml = zlib.inflateRawSync(Buffer.from(encoded, 'base64')).toString('utf8');
  const root = /<(?:\w+:)?AuthnRequest\b[^>]*>/.exec(xml)?.[0];
  if (!root) throw new Error('not an AuthnRequest');

  return {
    id: /\sID="([^"]*)"/.exec(root)?.[1] ?? '',
    issuer: /<(?:\w+:)?Issuer\b[^>]*>([^<]*)</.exec(xml)?.[1] ?? '',
    acsUrl: unescapeXml(/\sAssertionConsumerServiceURL="([^"]*)"/.exec(root)?.[1] ?? ''),
  };
}

/** Builds, signs and base64-encodes a SAML 2.0 Response for `request` following `provider.plan`. */
function buildResponse(
  provider: TestIdentityProvider,
  request: { id: string; issuer: string; acsUrl: string },
): string {
  const plan = provider.plan;
  const now = Date.now();
  const instant = (offsetSeconds: number) => new Date(now + offsetSeconds * 1000).toISOString();
  const inResponseTo = plan.inResponseTo === undefined ? request.id : plan.inResponseTo;
  const inResponseToAttribute =
    inResponseTo === null ? '' : ` InResponseTo="${escapeXml(inResponseTo)}"`;
  const notOnOrAfter = instant(plan.notOnOrAfterSeconds ?? 300);

  const attributes = Object.entries(plan.attributes)
    .map(
      ([name, values]) =>
        `<saml:Attribute Name="${escapeXml(name)}">` +
        values
          .map((value) => `<saml:AttributeValue>${escapeXml(value)}</saml:AttributeValue>`)
          .join('') +
        '</saml:Attribute>',
    )
    .join('');

  const assertion =
    `<saml:Assertion ID="${plan.assertionId ?? randomId()}" Version="2.0" IssueInstant="${instant(0)}">` +
    `<saml:Issuer>${escapeXml(provider.entityId)}</saml:Issuer>` +
    '<saml:Subject>' +
    `<saml:NameID Format="${plan.nameIdFormat ?? persistentFormat}">${escapeXml(plan.nameId)}</saml:NameID>` +
    '<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">' +
    `<saml:SubjectConfirmationData${inResponseToAttribute} NotOnOrAfter="${notOnOrAfter}" Recipient="${escapeXml(request.acsUrl)}"/>` +
    '</saml:SubjectConfirmation>' +
    '</saml:Subject>' +
    `<saml:Conditions NotBefore="${instant(plan.notBeforeSeconds ?? -5)}" NotOnOrAfter="${notOnOrAfter}">` +
    `<saml:AudienceRestriction><saml:Audience>${escapeXml(plan.audience ?? request.issuer)}</saml:Audience></saml:AudienceRestriction>` +
    '</saml:Conditions>' +
    `<saml:AuthnStatement AuthnInstant="${instant(0)}" SessionIndex="${randomId()}">` +
    '<saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext>' +
    '</saml:AuthnStatement>' +
    `<saml:AttributeStatement>${attributes}</saml:AttributeStatement>` +
    '</saml:Assertion>';

  const unsigned =
    '<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion"' +
    ` ID="${randomId()}" Version="2.0" IssueInstant="${instant(0)}" Destination="${escapeXml(request.acsUrl)}"${inResponseToAttribute}>` +
    `<saml:Issuer>${escapeXml(provider.entityId)}</saml:Issuer>` +
    '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>' +
    assertion +
    '</samlp:Response>';

  if (plan.failureStatus) {
    const failed = unsigned.replace(
      /<samlp:Status>.*<\/samlp:Response>$/,
      '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Responder">' +
        `<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:${plan.failureStatus}"/>` +
        '</samlp:StatusCode></samlp:Status></samlp:Response>',
    );
    return Buffer.from(failed, 'utf8').toString('base64');
  }

  const key = plan.signingKey === 'other' ? provider.untrusted : provider.trusted;
  const signed = sign(unsigned, key, plan.signed ?? 'assertion');
  const delivered = plan.tamper ? plan.tamper(signed) : signed;
  return Buffer.from(delivered, 'utf8').toString('base64');
}

/** Signs the assertion or the whole response with an enveloped RSA-SHA256 signature placed after its Issuer, as the schema orders it. */
function sign(xml: string, key: SigningKey, target: 'assertion' | 'response'): string {
  const element = target === 'assertion' ? 'Assertion' : 'Response';
  const signature = new SignedXml({
    privateKey: key.privateKey,
    publicCert: key.certificate,
    signatureAlgorithm: rsaSha256,
    canonicalizationAlgorithm: exclusiveC14n,
  });
  signature.addReference({
    xpath: `//*[local-name(.)='${element}']`,
    digestAlgorithm: sha256Digest,
    transforms: [envelopedSignature, exclusiveC14n],
  });
  signature.computeSignature(xml, {
    location: {
      reference: `//*[local-name(.)='${element}']/*[local-name(.)='Issuer']`,
      action: 'after',
    },
  });
  return signature.getSignedXml();
}

/** An xs:ID value: it must not start with a digit. */
function randomId(): string {
  return `_${crypto.randomBytes(16).toString('hex')}`;
}

function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

function unescapeXml(text: string): string {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&gt;/g, '>')
    .replace(/&lt;/g, '<')
    .replace(/&amp;/g, '&');
}
