import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { readSamlSettings } from './settings';
import { makeSigningKey, type SigningKey } from './testing/test-idp';

describe('SAML settings', function () {
  let directory: string;
  let key: SigningKey;

  before(function () {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'saml-settings-'));
    key = makeSigningKey(directory, 'settings-idp');
  });

  after(function () {
    fs.rmSync(directory, { recursive: true, force: true });
  });

  const minimal = () => ({
    SAML_IDP_SSO_URL: 'https://idp.example.test/sso',
    SAML_IDP_CERT_FILE: key.certificateFile,
  });

  it('is off without SAML_* settings', function () {
    assert.equal(readSamlSettings({ OIDC_ISSUER: 'https://x.example.test' }), undefined);
    assert.equal(readSamlSettings({ SAML_IDP_SSO_URL: '' }), undefined);
  });

  it('reads minimal settings with defaults', function () {
    const settings = readSamlSettings(minimal());
    assert.ok(settings);
    assert.equal(settings.idpSsoUrl.href, 'https://idp.example.test/sso');
    assert.equal(settings.idpCertificate, key.certificate);
    assert.equal(settings.groupAttribute, 'groups');
    assert.equal(settings.clockSkewSeconds, 60);
    assert.equal(settings.spEntityId, undefined);
    assert.equal(settings.acsUrl, undefined);
    assert.equal(settings.usernameAttribute, undefined);
    assert.deepEqual(settings.groupRoleMap, {});
    assert.equal(settings.defaultRole, undefined);
  });

  it('reads every optional setting', function () {
    const settings = readSamlSettings({
      ...minimal(),
      SAML_IDP_ENTITY_ID: 'https://idp.example.test/entity',
      SAML_SP_ENTITY_ID: 'urn:appliance:sp',
      SAML_ACS_URL: 'https://appliance.example.test/api/v1/auth/saml/acs',
      SAML_USERNAME_ATTRIBUTE: 'uid',
      SAML_GROUP_ATTRIBUTE: 'memberOf',
      SAML_GROUP_ROLE_MAP: '{"soc": "analyst"}',
      SAML_DEFAULT_ROLE: 'auditor',
      SAML_CLOCK_SKEW_SECONDS: '0',
    });
    assert.ok(settings);
    assert.equal(settings.idpEntityId, 'https://idp.example.test/entity');
    assert.equal(settings.spEntityId, 'urn:appliance:sp');
    assert.equal(settings.acsUrl?.pathname, '/api/v1/auth/saml/acs');
    assert.equal(settings.usernameAttribute, 'uid');
    assert.equal(settings.groupAttribute, 'memberOf');
    assert.deepEqual(settings.groupRoleMap, { soc: 'analyst' });
    assert.equal(settings.defaultRole, 'auditor');
    assert.equal(settings.clockSkewSeconds, 0);
  });

  it('requires SAML_IDP_SSO_URL with any other SAML_* setting', function () {
    assert.throws(
      () => readSamlSettings({ SAML_IDP_CERT_FILE: key.certificateFile }),
      /Invalid SAML_IDP_SSO_URL: it is required when SAML_IDP_CERT_FILE is set/,
    );
  });

  it('accepts plain http only on loopback', function () {
    const loopback = readSamlSettings({
      ...minimal(),
      SAML_IDP_SSO_URL: 'http://127.0.0.1:8080/sso',
    });
    assert.equal(loopback?.idpSsoUrl.protocol, 'http:');
    assert.throws(
      () => readSamlSettings({ ...minimal(), SAML_IDP_SSO_URL: 'http://idp.example.test/sso' }),
      /Invalid SAML_IDP_SSO_URL: .* must use https/,
    );
    assert.throws(
      () => readSamlSettings({ ...minimal(), SAML_IDP_SSO_URL: 'not a url' }),
      /Invalid SAML_IDP_SSO_URL: "not a url" is not an absolute URL/,
    );
  });

  it('requires a readable PEM certificate', function () {
    const { SAML_IDP_SSO_URL } = minimal();
    assert.throws(
      () => readSamlSettings({ SAML_IDP_SSO_URL }),
      /Invalid SAML_IDP_CERT_FILE: it is required/,
    );
    assert.throws(
      () =>
        readSamlSettings({
          SAML_IDP_SSO_URL,
          SAML_IDP_CERT_FILE: path.join(directory, 'absent.crt'),
        }),
      /Invalid SAML_IDP_CERT_FILE: .*absent\.crt" could not be read \(ENOENT\)/,
    );

    const notACertificate = path.join(directory, 'private.pem');
    fs.writeFileSync(notACertificate, key.privateKey);
    assert.throws(
      () => readSamlSettings({ SAML_IDP_SSO_URL, SAML_IDP_CERT_FILE: notACertificate }),
      /Invalid SAML_IDP_CERT_FILE: .* is not a PEM X.509 certificate/,
    );
  });

  it('rejects an https-less ACS URL', function () {
    assert.throws(
      () => readSamlSettings({ ...minimal(), SAML_ACS_URL: 'http://appliance.example.test/acs' }),
      /Invalid SAML_ACS_URL: .* must be an https URL/,
    );
  });

  it('rejects a group map naming an unknown role', function () {
    assert.throws(
      () => readSamlSettings({ ...minimal(), SAML_GROUP_ROLE_MAP: '{"soc": "superuser"}' }),
      /Invalid SAML_GROUP_ROLE_MAP: group "soc" maps to "superuser"/,
    );
    assert.throws(
      () => readSamlSettings({ ...minimal(), SAML_DEFAULT_ROLE: 'root' }),
      /Invalid SAML_DEFAULT_ROLE: "root" is not a role/,
    );
  });

  it('rejects a clock skew out of range', function () {
    for (const raw of ['-1', '601', '1.5', 'a minute'])
      assert.throws(
        () => readSamlSettings({ ...minimal(), SAML_CLOCK_SKEW_SECONDS: raw }),
        /Invalid SAML_CLOCK_SKEW_SECONDS: .* whole number of seconds from 0 to 600/,
        raw,
      );
  });
});
