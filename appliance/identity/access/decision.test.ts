import assert from 'node:assert/strict';

import type { Permission } from '../permissions';
import { AccessView, type EffectiveGrant } from './decision';

const folder = '11111111-1111-4111-8111-111111111111';

function grant(id: string, extra: Partial<EffectiveGrant>): EffectiveGrant {
  return {
    id,
    source: 'grant',
    role: 'author',
    permissions: new Set<Permission>(['prompts:read']),
    scope: { type: 'folder', id: folder },
    conditions: [],
    expiresAt: null,
    ...extra,
  };
}

const attributes = {
  sourceIp: '127.0.0.1',
  at: new Date('2026-12-04T10:00:00Z'),
  mfaVerified: false,
  deviceTrusted: false,
};
const subject = { userId: 'u1', role: 'auditor' as const };

describe('access decision messages', function () {
  it('names every failed condition', function () {
    const view = new AccessView(subject, attributes, [
      grant('g1', { conditions: [{ sourceIps: ['10.0.0.0/8'] }] }),
      grant('g2', { conditions: [{ maxClassification: 'confidential' }] }),
    ]);
    const decision = view.decide('prompts:read', {
      folderIds: [folder],
      classification: 'restricted',
    });

    assert.equal(decision.allowed, false);
    assert.match(decision.reason!, /None of your 2 grants of prompts:read/);
    assert.match(decision.reason!, /1\) it applies only from 10\.0\.0\.0\/8/);
    assert.match(decision.reason!, /2\) it reaches data up to "confidential"/);
  });

  it('names each scope once', function () {
    const view = new AccessView(subject, attributes, [grant('g1', {}), grant('g2', {})]);
    const decision = view.decide('prompts:read', { folderIds: ['other'] });

    assert.equal(decision.allowed, false);
    assert.equal(
      decision.reason,
      `Your grants of prompts:read apply to folder ${folder}, not to this resource; ask for a grant at its scope.`,
    );
  });

  it('allows through any grant that fits', function () {
    const view = new AccessView(subject, attributes, [
      grant('g1', { conditions: [{ sourceIps: ['10.0.0.0/8'] }] }),
      grant('g2', { conditions: [{ sourceIps: ['127.0.0.0/8'] }] }),
    ]);
    assert.deepEqual(view.decide('prompts:read', { folderIds: [folder] }), {
      allowed: true,
      grantId: 'g2',
    });
  });
});
