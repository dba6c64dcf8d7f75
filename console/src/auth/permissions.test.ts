import assert from 'node:assert/strict';

import { permissionNames } from '../../../appliance/identity/permissions';
import { grantedPermissions, permissionsFor } from './permissions';

describe('console role grants', function () {
  it('give admin every permission', function () {
    assert.deepEqual([...grantedPermissions('admin')].sort(), [...permissionNames].sort());
  });

  it('give auditor key reading only', function () {
    const granted = grantedPermissions('auditor');
    assert.ok(granted.includes('keys:read'));
    assert.ok(!granted.includes('keys:execute'));
    assert.ok(!granted.includes('users:create'));
  });

  it('grant nothing to an unknown role', function () {
    assert.deepEqual(grantedPermissions('operator'), []);
    assert.deepEqual(grantedPermissions(undefined), []);
  });

  // The page flags must agree with the grants, or a page shows actions the appliance rejects.
  it('match the page flags', function () {
    for (const role of ['admin', 'author', 'analyst', 'auditor']) {
      const granted = grantedPermissions(role);
      const flags = permissionsFor(role);
      assert.equal(flags.readKeys, granted.includes('keys:read'), `${role} readKeys`);
      assert.equal(flags.rotateKeys, granted.includes('keys:execute'), `${role} rotateKeys`);
      assert.equal(
        flags.manageUsers,
        ['users:read', 'users:create', 'users:update'].every((permission) =>
          granted.includes(permission as (typeof granted)[number]),
        ),
        `${role} manageUsers`,
      );
    }
  });
});
