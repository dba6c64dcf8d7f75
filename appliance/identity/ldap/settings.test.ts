import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { bindDnFor, escapeDnValue, firstRdnValue, groupFilterFor, userFilterFor } from './queries';
import { readLdapSettings } from './settings';

describe('LDAP settings', function () {
  let dir: string;
  let passwordFile: string;

  before(function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ldap-settings-'));
    passwordFile = path.join(dir, 'service-password');
    fs.writeFileSync(passwordFile, 'service-secret\n', { mode: 0o600 });
  });

  after(function () {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const base = {
    LDAP_URL: 'ldap://127.0.0.1:3389',
    LDAP_BASE_DN: 'dc=example,dc=test',
    LDAP_BIND_DN_TEMPLATE: 'uid={username},ou=people,dc=example,dc=test',
  };

  it('is off without LDAP_* settings', function () {
    assert.equal(readLdapSettings({}), undefined);
  });

  it('reads defaults', function () {
    const settings = readLdapSettings({ ...base, LDAP_GROUP_ROLE_MAP: '{"soc": "analyst"}' });
    assert.equal(settings?.groupBaseDn, 'dc=example,dc=test');
    assert.equal(settings?.timeoutMs, 5000);
    assert.deepEqual(settings?.groupRoleMap, { soc: 'analyst' });
    assert.equal(settings?.defaultRole, undefined);
  });

  it('reads the service password file', function () {
    const settings = readLdapSettings({
      LDAP_URL: 'ldaps://directory.example.test',
      LDAP_BASE_DN: 'dc=example,dc=test',
      LDAP_BIND_DN: 'cn=reader,dc=example,dc=test',
      LDAP_BIND_PASSWORD_FILE: passwordFile,
    });
    assert.deepEqual(settings?.serviceAccount, {
      dn: 'cn=reader,dc=example,dc=test',
      password: 'service-secret',
    });
  });

  it('rejects bad settings naming them', function () {
    const looseFile = path.join(dir, 'loose-password');
    fs.writeFileSync(looseFile, 'secret\n', { mode: 0o644 });
    fs.chmodSync(looseFile, 0o644);

    const cases: [Record<string, string>, RegExp][] = [
      [{ LDAP_BASE_DN: 'dc=x' }, /LDAP_URL: it is required/],
      [{ ...base, LDAP_URL: 'ldap://directory.example.test' }, /LDAP_URL: .* must use ldaps/],
      [{ ...base, LDAP_URL: 'not a url' }, /LDAP_URL: .* not an absolute URL/],
      [{ ...base, LDAP_BASE_DN: '' }, /LDAP_BASE_DN: it is required/],
      [{ ...base, LDAP_BIND_DN_TEMPLATE: 'uid=x' }, /LDAP_BIND_DN_TEMPLATE: it must contain/],
      [{ ...base, LDAP_BIND_DN_TEMPLATE: '' }, /LDAP_BIND_DN_TEMPLATE: set it/],
      [{ ...base, LDAP_BIND_DN: 'cn=reader' }, /LDAP_BIND_PASSWORD_FILE/],
      [{ ...base, LDAP_BIND_DN: 'cn=reader', LDAP_BIND_PASSWORD_FILE: looseFile }, /chmod 600/],
      [{ ...base, LDAP_USER_FILTER: '(uid=x)' }, /LDAP_USER_FILTER: it must contain/],
      [{ ...base, LDAP_GROUP_ROLE_MAP: '{"soc": "root"}' }, /LDAP_GROUP_ROLE_MAP: .*"root"/],
      [{ ...base, LDAP_DEFAULT_ROLE: 'root' }, /LDAP_DEFAULT_ROLE/],
      [{ ...base, LDAP_TIMEOUT_MS: '0' }, /LDAP_TIMEOUT_MS/],
    ];
    for (const [env, message] of cases) assert.throws(() => readLdapSettings(env), message);
  });
});

describe('LDAP query escaping', function () {
  it('escapes filter characters in user names', function () {
    const template = '(&(objectClass=inetOrgPerson)(uid={username}))';
    assert.equal(
      userFilterFor(template, 'a*)(uid=*'),
      '(&(objectClass=inetOrgPerson)(uid=a\\2a\\29\\28uid=\\2a))',
    );
    assert.equal(
      userFilterFor(template, 'back\\slash'),
      '(&(objectClass=inetOrgPerson)(uid=back\\5cslash))',
    );
    assert.equal(
      userFilterFor(template, 'nul\u0000'),
      '(&(objectClass=inetOrgPerson)(uid=nul\\00))',
    );
  });

  it('escapes the user DN in group filters', function () {
    assert.equal(
      groupFilterFor('(member={dn})', 'uid=a(1),ou=people'),
      '(member=uid=a\\281\\29,ou=people)',
    );
  });

  it('escapes DN special characters', function () {
    assert.equal(escapeDnValue('a,b=c+d'), 'a\\,b\\=c\\+d');
    assert.equal(escapeDnValue('#lead'), '\\#lead');
    assert.equal(escapeDnValue(' both '), '\\ both\\ ');
    assert.equal(escapeDnValue('nul\u0000'), 'nul\\00');
    assert.equal(
      bindDnFor('uid={username},ou=people', 'x,ou=admins'),
      'uid=x\\,ou\\=admins,ou=people',
    );
  });

  it('reads the first RDN value', function () {
    assert.equal(firstRdnValue('cn=soc-analysts,ou=groups,dc=example'), 'soc-analysts');
    assert.equal(firstRdnValue('cn=a\\,b,ou=groups'), 'a,b');
  });
});
