import assert from 'node:assert/strict';

import { groupsClaim, roleForGroups } from './role-mapping';
import { readOidcSettings } from './settings';
import { usernameFromClaims } from './accounts';

const base = {
  OIDC_ISSUER: 'https://idp.example.test/realms/soc',
  OIDC_CLIENT_ID: 'appliance',
  OIDC_CLIENT_SECRET: 'client-secret',
};

describe('OIDC settings', function () {
  it('is off when no OIDC_* setting is given', function () {
    assert.equal(readOidcSettings({ APPLIANCE_PORT: '8443' }), undefined);
  });

  it('reads a full configuration', function () {
    const settings = readOidcSettings({
      ...base,
      OIDC_REDIRECT_URI: 'https://appliance.example.test/api/v1/auth/oidc/callback',
      OIDC_GROUP_ROLE_MAP: '{"soc-analysts": "analyst", "soc-admins": "admin"}',
      OIDC_DEFAULT_ROLE: 'auditor',
    })!;
    assert.equal(settings.issuer.href, base.OIDC_ISSUER);
    assert.equal(settings.redirectUri?.pathname, '/api/v1/auth/oidc/callback');
    assert.deepEqual(settings.groupRoleMap, { 'soc-analysts': 'analyst', 'soc-admins': 'admin' });
    assert.equal(settings.defaultRole, 'auditor');
    assert.equal(settings.scopes, 'openid profile email groups');
  });

  it('treats OIDC_DEFAULT_ROLE=none as no default role', function () {
    assert.equal(readOidcSettings({ ...base, OIDC_DEFAULT_ROLE: 'none' })!.defaultRole, undefined);
  });

  const invalid: Array<[string, Record<string, string>, RegExp]> = [
    ['a setting without OIDC_ISSUER', { OIDC_CLIENT_ID: 'x' }, /OIDC_ISSUER.*required/],
    ['a missing client id', { ...base, OIDC_CLIENT_ID: '' }, /OIDC_CLIENT_ID/],
    ['a missing client secret', { ...base, OIDC_CLIENT_SECRET: '' }, /OIDC_CLIENT_SECRET/],
    ['a relative issuer', { ...base, OIDC_ISSUER: 'idp/realms' }, /OIDC_ISSUER.*absolute URL/],
    [
      'a plain http issuer off loopback',
      { ...base, OIDC_ISSUER: 'http://idp.example.test' },
      /OIDC_ISSUER.*https/,
    ],
    [
      'an http redirect URI',
      { ...base, OIDC_REDIRECT_URI: 'http://appliance.example.test/cb' },
      /OIDC_REDIRECT_URI.*https/,
    ],
    [
      'a group map that is not JSON',
      { ...base, OIDC_GROUP_ROLE_MAP: '{soc' },
      /GROUP_ROLE_MAP.*JSON/,
    ],
    [
      'a group map that is a list',
      { ...base, OIDC_GROUP_ROLE_MAP: '["a"]' },
      /GROUP_ROLE_MAP.*object/,
    ],
    [
      'a group mapped to an unknown role',
      { ...base, OIDC_GROUP_ROLE_MAP: '{"soc": "superuser"}' },
      /GROUP_ROLE_MAP.*"soc".*"superuser".*admin, author, analyst, auditor/,
    ],
    [
      'an unknown default role',
      { ...base, OIDC_DEFAULT_ROLE: 'root' },
      /OIDC_DEFAULT_ROLE.*"root"/,
    ],
    ['scopes without openid', { ...base, OIDC_SCOPES: 'profile email' }, /OIDC_SCOPES.*openid/],
  ];
  for (const [what, env, message] of invalid) {
    it(`refuses ${what}, naming the setting`, function () {
      assert.throws(() => readOidcSettings(env), message);
    });
  }

  it('accepts an http issuer on a loopback address', function () {
    const settings = readOidcSettings({ ...base, OIDC_ISSUER: 'http://127.0.0.1:9000' });
    assert.equal(settings!.issuer.port, '9000');
  });
});

describe('OIDC group to role mapping', function () {
  const settings = { groupRoleMap: { 'soc-analysts': 'analyst', admins: 'admin' } as const };

  it('maps a group to its role and ignores unmapped groups', function () {
    assert.equal(roleForGroups(['marketing', 'soc-analysts'], settings), 'analyst');
  });

  it('gives the first role in role order to a user in several mapped groups', function () {
    assert.equal(roleForGroups(['soc-analysts', 'admins'], settings), 'admin');
  });

  it('falls back to the default role, or to none', function () {
    assert.equal(roleForGroups(['marketing'], { ...settings, defaultRole: 'auditor' }), 'auditor');
    assert.equal(roleForGroups(['marketing'], settings), undefined);
  });

  it('does not map inherited object keys such as "constructor"', function () {
    assert.equal(roleForGroups(['constructor', '__proto__'], settings), undefined);
  });

  it('reads the groups claim as a list or a single string', function () {
    assert.deepEqual(groupsClaim(['a', 1, 'b']), ['a', 'b']);
    assert.deepEqual(groupsClaim('a'), ['a']);
    assert.deepEqual(groupsClaim(undefined), []);
  });
});

describe('OIDC user names', function () {
  it('takes preferred_username, NFKC-normalised, else email', function () {
    assert.equal(usernameFromClaims({ preferred_username: 'Ｂob.Ｓmith' }), 'bob.smith');
    assert.equal(usernameFromClaims({ email: 'Carol@Example.test' }), 'carol@example.test');
  });

  it('skips a name with characters a local name may not hold', function () {
    assert.equal(
      usernameFromClaims({ preferred_username: 'bob smith', email: 'bob@example.test' }),
      'bob@example.test',
    );
    assert.equal(usernameFromClaims({ preferred_username: 'a/b' }), undefined);
  });
});
