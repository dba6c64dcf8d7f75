import assert from 'node:assert/strict';

import { chosenPassword } from '../../../appliance/identity/password-policy';
import { generateOneTimePassword } from './users-api';

describe('generated one-time password', function () {
  it('passes the appliance password policy', function () {
    for (let round = 0; round < 20; round += 1) {
      const password = generateOneTimePassword();
      assert.equal(chosenPassword.safeParse(password).success, true, password);
    }
  });

  it('has 20 unambiguous characters', function () {
    const password = generateOneTimePassword();
    assert.equal(password.length, 20);
    assert.match(password, /^[A-HJ-NP-Za-km-np-z2-9]+$/);
  });

  it('differs between calls', function () {
    const passwords = new Set(Array.from({ length: 50 }, generateOneTimePassword));
    assert.equal(passwords.size, 50);
  });
});
