import assert from 'node:assert/strict';

import { findBursts } from './bursts';
import { formatDuration } from './duration';

const second = 1000;

describe('sliding-window bursts', function () {
  it('finds none below the minimum count', function () {
    assert.deepEqual(
      findBursts(
        [0, 1, 2, 3].map((s) => s * second),
        60 * second,
        5,
      ),
      [],
    );
  });

  it('finds a burst at exactly the minimum count', function () {
    const bursts = findBursts(
      [0, 10, 20, 30, 40].map((s) => s * second),
      60 * second,
      5,
    );
    assert.equal(bursts.length, 1);
    assert.equal(bursts[0].count, 5);
    assert.equal(bursts[0].peak, 5);
    assert.equal(bursts[0].firstSeen, 0);
    assert.equal(bursts[0].lastSeen, 40 * second);
  });

  it('counts a window as half-open: an event exactly W earlier is outside', function () {
    assert.deepEqual(
      findBursts(
        [0, 15, 30, 45, 60].map((s) => s * second),
        60 * second,
        5,
      ),
      [],
    );
  });

  it('finds a burst that straddles a minute boundary', function () {
    // Fixed one-minute buckets would see 3 and 2 events here.
    const times = [40, 45, 50, 65, 70].map((s) => s * second);
    const bursts = findBursts(times, 60 * second, 5);
    assert.equal(bursts.length, 1);
    assert.equal(bursts[0].start, 0);
    assert.equal(bursts[0].end, 4);
  });

  it('keeps sparse events around a burst out of it', function () {
    const times = [0, 200, 205, 210, 215, 220, 500].map((s) => s * second);
    const bursts = findBursts(times, 60 * second, 5);
    assert.equal(bursts.length, 1);
    assert.equal(bursts[0].start, 1);
    assert.equal(bursts[0].end, 5);
  });

  it('merges overlapping windows and splits distant bursts', function () {
    const first = [0, 1, 2, 3, 4, 50, 51, 52, 53, 54];
    const second_ = [1000, 1001, 1002, 1003, 1004];
    const bursts = findBursts(
      [...first, ...second_].map((s) => s * second),
      60 * second,
      5,
    );
    assert.equal(bursts.length, 2);
    assert.equal(bursts[0].count, 10);
    assert.equal(bursts[0].peak, 10);
    assert.equal(bursts[1].count, 5);
  });
});

describe('alert summary durations', function () {
  it('writes seconds, minutes and hours', function () {
    assert.equal(formatDuration(500), 'less than a second');
    assert.equal(formatDuration(1000), '1 second');
    assert.equal(formatDuration(42_000), '42 seconds');
    assert.equal(formatDuration(300_000), '5 minutes');
    assert.equal(formatDuration(3_600_000), '1 hour');
    assert.equal(formatDuration(7_380_000), '2 hours 3 minutes');
  });
});
