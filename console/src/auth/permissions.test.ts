import assert from 'node:assert/strict';

import { builtInRoles, permissionNames } from '../../../appliance/identity/permissions';
import { homeSection, permissionsFor, type PermissionName } from './permissions';

/** Effective permissions of a user who has only a built-in base role. */
function baseRole(role: 'admin' | 'author' | 'analyst' | 'auditor'): readonly PermissionName[] {
  return builtInRoles[role].permissions;
}

describe('console page flags', function () {
  it('give admin every flag', function () {
    const flags = permissionsFor(permissionNames);
    for (const [flag, value] of Object.entries(flags)) assert.equal(value, true, flag);
  });

  it('turn off with no permissions', function () {
    const flags = permissionsFor([]);
    for (const [flag, value] of Object.entries(flags)) assert.equal(value, false, flag);
    assert.equal(homeSection(flags), undefined);
  });

  it('ignore unknown permission strings', function () {
    const flags = permissionsFor(['operator:everything', 'keys']);
    assert.equal(flags.readKeys, false);
  });

  // The flags of a base role must agree with its permissions, or a page shows actions the
  // appliance rejects.
  it('match the built-in roles', function () {
    const expected = {
      author: { listPrompts: true, editPrompts: true, readAlerts: false, readKeys: false },
      analyst: { listPrompts: true, editPrompts: false, readAlerts: true, readKeys: false },
      auditor: { listPrompts: false, editPrompts: false, readAlerts: true, readKeys: true },
    } as const;
    for (const [role, want] of Object.entries(expected)) {
      const flags = permissionsFor(baseRole(role as keyof typeof expected));
      for (const [flag, value] of Object.entries(want))
        assert.equal(flags[flag as keyof typeof want], value, `${role} ${flag}`);
      assert.equal(flags.manageUsers, false, `${role} manageUsers`);
      assert.equal(flags.rotateKeys, false, `${role} rotateKeys`);
      assert.equal(flags.manageAccess, false, `${role} manageAccess`);
    }
  });

  it('open alerts first for auditors', function () {
    assert.equal(homeSection(permissionsFor(baseRole('auditor'))), 'alerts');
    assert.equal(homeSection(permissionsFor(baseRole('author'))), 'prompts');
  });

  // An author holding a grant of a custom role "key-reader" (keys:read, audit:read): GET
  // /access/me lists the union of both, so the Keys page opens but rotation stays hidden.
  it('add a custom role grant', function () {
    const flags = permissionsFor([...baseRole('author'), 'keys:read', 'audit:read'].sort());
    assert.equal(flags.readKeys, true);
    assert.equal(flags.rotateKeys, false);
    assert.equal(flags.editPrompts, true, 'base role flags stay');
    assert.equal(flags.readAlerts, false);
  });

  // An auditor with a grant of the built-in author role at one project's scope: /access/me
  // lists permissions held at any scope, so the prompt pages show and the appliance limits
  // what they list to that project.
  it('add a project-scoped grant', function () {
    const flags = permissionsFor([...baseRole('auditor'), ...baseRole('author')]);
    assert.equal(flags.listPrompts, true);
    assert.equal(flags.readPromptBodies, true);
    assert.equal(flags.editPrompts, true);
    assert.equal(flags.readKeys, true, 'base role flags stay');
    assert.equal(homeSection(flags), 'prompts');
  });

  it('need all permissions of a flag', function () {
    const partial = permissionsFor(['users:read', 'users:update']);
    assert.equal(partial.manageUsers, false, 'users:create missing');
    assert.equal(partial.manageAccess, false, 'settings:create missing');
    const full = permissionsFor(['users:read', 'users:update', 'users:create', 'settings:create']);
    assert.equal(full.manageUsers, true);
    assert.equal(full.manageAccess, true);
  });

  it('follow break-glass access', function () {
    // The break-glass role inherits admin, so /access/me lists every permission while it is open.
    const during = permissionsFor([...new Set([...baseRole('analyst'), ...permissionNames])]);
    assert.equal(during.manageUsers, true);
    const after = permissionsFor(baseRole('analyst'));
    assert.equal(after.manageUsers, false);
  });
});
