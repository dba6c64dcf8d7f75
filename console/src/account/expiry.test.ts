import assert from 'node:assert/strict';

import { dateInputValue, daysFrom, expiryInstant, latestExpiryDay } from './expiry';

describe('API key expiry day', function () {
  it('ends at the end of the local day', function () {
    const instant = expiryInstant('2027-03-01');
    assert.ok(instant);
    const end = new Date(instant);
    assert.equal(dateInputValue(end), '2027-03-01');
    assert.equal(end.getHours(), 23);
    assert.equal(end.getMinutes(), 59);
  });

  it('rejects empty and invalid days', function () {
    assert.equal(expiryInstant(''), undefined);
    assert.equal(expiryInstant('01.03.2027'), undefined);
    assert.equal(expiryInstant('2027-3-1'), undefined);
  });

  it('offers at most 364 days ahead', function () {
    const today = new Date(2027, 0, 15, 10, 0, 0);
    assert.equal(latestExpiryDay(today), dateInputValue(daysFrom(today, 364)));
    assert.equal(latestExpiryDay(today), '2028-01-14');
  });
});
