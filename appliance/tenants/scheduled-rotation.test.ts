import assert from 'node:assert/strict';
import fs from 'node:fs';

import { QueryTypes } from 'sequelize';

import { runPkcs11Tool } from '../../hsm/test-support';
import { tenantKeyLabelPrefix } from '../../hsm/tenant-keys';
import { parseTenantRotationCron } from '../keys/rotation-schedule';
import { loadConfig } from '../platform/config';
import type { ApiClient } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';
import { openTenants, type Tenants } from './index';
import { createCustomerProject, tenantItems, waitForRotation } from './test-support';
import { tenantKeyUnavailable } from './service';
import {
  rotateTenantKeysOnSchedule,
  type ScheduledTenantRotationContext,
} from './scheduled-rotation';

/** 04:00 on 1 January: far enough away that cron never fires during a test. */
const yearlyCron = '0 4 1 1 *';

/** Deletes tenant key version 1 of a project from its token with OpenSC pkcs11-tool, as the customer would. */
function destroyFirstTenantKey(
  test: TestAppliance,
  project: Awaited<ReturnType<typeof createCustomerProject>>,
) {
  const pin = fs.readFileSync(project.pinFile, 'utf8').trim();
  runPkcs11Tool({ ...test.appliance.config.hsm, tokenLabel: project.label }, [
    '--login',
    '--pin',
    pin,
    '--delete-object',
    '--type',
    'secrkey',
    '--label',
    `${tenantKeyLabelPrefix}${project.id}`,
  ]);
}

/** Builds the scheduled job's parts from the running appliance and a tenant domain. */
function jobContext(test: TestAppliance, tenants: Tenants): ScheduledTenantRotationContext {
  const running = test.appliance;
  return {
    database: running.database,
    projects: tenants.projects,
    rotation: tenants.rotation,
    audit: running.audit,
  };
}

/**
 * Opens a second tenant domain on the running appliance's database, which
 * gives the scheduled job its parts, runs `work` with it, then stops its
 * rewrap jobs and closes it.
 */
async function withSecondDomain<T>(test: TestAppliance, work: (tenants: Tenants) => Promise<T>) {
  const running = test.appliance;
  const tenants = await openTenants(running.config, running.database, running.keys, undefined, {
    resume: false,
  });
  try {
    return await work(tenants);
  } finally {
    await tenants.rotation.stop();
    tenants.close();
  }
}

describe('TENANT_KEY_ROTATION_CRON setting', () => {
  it('defaults to off', () => {
    assert.equal(parseTenantRotationCron(undefined), null);
    assert.equal(parseTenantRotationCron(''), null);
    assert.equal(parseTenantRotationCron('OFF'), null);
    assert.equal(loadConfig({ APPLIANCE_DATA_DIR: '/tmp/unused' }).tenantKeyRotationCron, null);
  });

  it('accepts a cron expression', () => {
    const config = loadConfig({
      APPLIANCE_DATA_DIR: '/tmp/unused',
      TENANT_KEY_ROTATION_CRON: ` ${yearlyCron} `,
    });
    assert.equal(config.tenantKeyRotationCron, yearlyCron);
  });

  it('rejects an invalid expression at start', () => {
    assert.throws(
      () =>
        loadConfig({ APPLIANCE_DATA_DIR: '/tmp/unused', TENANT_KEY_ROTATION_CRON: 'every night' }),
      (error: Error) => {
        assert.match(error.message, /^TENANT_KEY_ROTATION_CRON "every night" is not a valid cron/);
        assert.match(error.message, /"off" to turn scheduled rotation off/);
        return true;
      },
    );
  });
});

describe('scheduled tenant key rotation @integration', function () {
  this.timeout(120_000);

  describe('with the schedule off', () => {
    let test: TestAppliance;
    let admin: ApiClient;

    before(async () => {
      test = await startTestAppliance();
      admin = await test.admin();
    });

    after(async () => {
      await test?.close();
    });

    it('inventory shows no nextRotation', async () => {
      const projectId = (await createCustomerProject(test, admin, 'unscheduled')).id;

      const [item] = await tenantItems(admin, projectId);
      assert.equal(item.state, 'active');
      assert.equal(item.nextRotation, null);
      assert.equal(item.lastRotated, null);
    });
  });

  describe('with the schedule on', () => {
    let test: TestAppliance;
    let admin: ApiClient;
    const projects: Record<'first' | 'second' | 'revoked', string> = {
      first: '',
      second: '',
      revoked: '',
    };

    before(async () => {
      test = await startTestAppliance({ env: { TENANT_KEY_ROTATION_CRON: yearlyCron } });
      admin = await test.admin();

      projects.first = (await createCustomerProject(test, admin, 'scheduled-first')).id;
      projects.second = (await createCustomerProject(test, admin, 'scheduled-second')).id;
      projects.revoked = (await createCustomerProject(test, admin, 'scheduled-revoked')).id;

      const prompt = await admin.post('/prompts', {
        title: 'Scheduled rotation',
        body: 'moved to the next tenant key version',
        projectId: projects.first,
      });
      assert.equal(prompt.status, 201, JSON.stringify(prompt.body));

      const revoked = await admin.post(`/projects/${projects.revoked}/key/revoke`);
      assert.equal(revoked.status, 200, JSON.stringify(revoked.body));
    });

    after(async () => {
      await test?.close();
    });

    it('inventory shows nextRotation on active keys', async () => {
      const [active] = await tenantItems(admin, projects.first);
      assert.equal(active.state, 'active');
      assert.ok(active.nextRotation, 'an active tenant key has a next rotation');
      const next = new Date(active.nextRotation);
      assert.equal(next.getMonth(), 0);
      assert.equal(next.getDate(), 1);
      assert.equal(next.getHours(), 4);
      assert.ok(next.getTime() > Date.now());

      const [revoked] = await tenantItems(admin, projects.revoked);
      assert.equal(revoked.state, 'revoked');
      assert.equal(revoked.nextRotation, null);
    });

    it('run rotates active keys and skips revoked', async () => {
      const running = test.appliance;
      await withSecondDomain(test, async (tenants) => {
        const run = await rotateTenantKeysOnSchedule(jobContext(test, tenants));

        assert.deepEqual(run.failed, []);
        assert.deepEqual(
          run.rotated.map((record) => record.projectId).sort(),
          [projects.first, projects.second].sort(),
        );
        assert.deepEqual(run.skipped, [
          { projectId: projects.revoked, reason: 'the key is revoked' },
        ]);

        for (const record of run.rotated) {
          assert.equal(record.trigger, 'scheduler');
          assert.equal(record.actor, 'scheduler');
          assert.equal(record.toVersion, 2);
          const finished = await waitForRotation(admin, record.id);
          assert.equal(finished.state, 'completed', JSON.stringify(finished));
        }

        const evidence = await running.database.sequelize.query<{
          project_id: string;
          trigger: string;
          actor: string;
        }>(
          `SELECT project_id, trigger, actor FROM key_rotations WHERE project_id IS NOT NULL
           ORDER BY project_id`,
          { type: QueryTypes.SELECT },
        );
        assert.deepEqual(
          evidence,
          [projects.first, projects.second]
            .sort()
            .map((id) => ({ project_id: id, trigger: 'scheduler', actor: 'scheduler' })),
        );

        const audited = await running.database.sequelize.query<{
          resource_id: string;
          reason: string;
        }>(
          `SELECT resource_id, reason FROM audit_records
           WHERE action = 'projects.key.rotate' AND actor_username = 'scheduler' AND outcome = 'success'
           ORDER BY resource_id`,
          { type: QueryTypes.SELECT },
        );
        assert.deepEqual(
          audited.map((row) => row.resource_id),
          [projects.first, projects.second].sort(),
        );
        for (const row of audited) {
          const rotation = run.rotated.find((record) => record.projectId === row.resource_id);
          assert.equal(row.reason, `rotation ${rotation?.id}`);
        }

        const [, newest] = await tenantItems(admin, projects.first);
        assert.equal(newest.keyVersion, 2);
        assert.ok(newest.lastRotated, 'a rotated tenant key has lastRotated');
        assert.ok(newest.nextRotation, 'the new active version has a next rotation');
      });
    });

    it('run skips a project whose rotation is running', async () => {
      await withSecondDomain(test, async (tenants) => {
        const context = {
          ...jobContext(test, tenants),
          // Without a rewrap the rotations of the first run stay `running`.
          rotation: {
            rotate: (...args: Parameters<typeof tenants.rotation.rotate>) =>
              tenants.rotation.rotate(...args),
            startRewrap: () => undefined,
          },
        };
        const first = await rotateTenantKeysOnSchedule(context);
        assert.equal(first.rotated.length, 2);

        const second = await rotateTenantKeysOnSchedule(context);
        assert.deepEqual(second.rotated, []);
        for (const record of first.rotated) {
          assert.ok(
            second.skipped.some(
              (skip) =>
                skip.projectId === record.projectId &&
                skip.reason === `rotation ${record.id} is still running`,
            ),
            JSON.stringify(second.skipped),
          );
        }

        for (const record of first.rotated) tenants.rotation.startRewrap(record.id);
        for (const record of first.rotated) {
          assert.equal((await waitForRotation(admin, record.id)).state, 'completed');
        }
      });
    });

    it('run skips a destroyed key', async () => {
      const project = await createCustomerProject(test, admin, 'scheduled-destroyed');
      const projectId = project.id;
      destroyFirstTenantKey(test, project);

      await withSecondDomain(test, async (tenants) => {
        const run = await rotateTenantKeysOnSchedule(jobContext(test, tenants));

        assert.ok(
          run.skipped.some(
            (skip) => skip.projectId === projectId && skip.reason === 'the key is destroyed',
          ),
          JSON.stringify(run.skipped),
        );
        assert.ok(!run.rotated.some((record) => record.projectId === projectId));
        assert.deepEqual(run.failed, []);
        for (const record of run.rotated) await waitForRotation(admin, record.id);
      });
    });

    it('one failure (simulated token loss) spares others', async () => {
      const running = test.appliance;
      await withSecondDomain(test, async (tenants) => {
        const lostProject = projects.first;
        // Simulated: the token cannot be pulled from a running SoftHSM here, so
        // rotate() for one project throws the problem the service raises for it.
        const rotation = {
          rotate: (...args: Parameters<typeof tenants.rotation.rotate>) => {
            if (args[0] === lostProject) {
              return Promise.reject(
                tenantKeyUnavailable(lostProject, 'the customer token is missing'),
              );
            }
            return tenants.rotation.rotate(...args);
          },
          startRewrap: (id: string) => tenants.rotation.startRewrap(id),
        };

        const run = await rotateTenantKeysOnSchedule({ ...jobContext(test, tenants), rotation });

        assert.deepEqual(
          run.rotated.map((record) => record.projectId),
          [projects.second],
        );
        assert.equal(run.failed.length, 1);
        assert.equal(run.failed[0].projectId, lostProject);
        assert.match(run.failed[0].error, /customer token is missing/);
        await waitForRotation(admin, run.rotated[0].id);

        const failures = await running.database.sequelize.query<{
          resource_id: string;
          reason: string;
        }>(
          `SELECT resource_id, reason FROM audit_records
           WHERE action = 'projects.key.rotate' AND actor_username = 'scheduler' AND outcome = 'failure'`,
          { type: QueryTypes.SELECT },
        );
        assert.equal(failures.length, 1);
        assert.equal(failures[0].resource_id, lostProject);
        assert.match(failures[0].reason, /customer token is missing/);
      });
    });
  });
});
