import assert from 'node:assert/strict';

import type { ApiClient } from '../../testing/api-client';
import { userIdOf } from '../../testing/accounts';
import { startTestAppliance, type TestAppliance } from '../../testing/harness';

describe('access control: grants scoped to folders and projects, limited by classification @integration', function () {
  this.timeout(120_000);
  let test: TestAppliance;
  let admin: ApiClient;
  const ids: Record<string, string> = {};

  before(async function () {
    test = await startTestAppliance();
    admin = await test.admin();

    const folder = async (name: string, parentId?: string) =>
      (await admin.post('/folders', { name, ...(parentId ? { parentId } : {}) })).body.id as string;
    ids.research = await folder('Research');
    ids.drafts = await folder('Drafts', ids.research);
    ids.finance = await folder('Finance');
    ids.project = (
      await admin.post('/projects', { name: 'Support bot', keyMode: 'appliance' })
    ).body.id;

    const prompt = async (title: string, extra: Record<string, string>) => {
      const response = await admin.post('/prompts', { title, body: `${title} body`, ...extra });
      assert.equal(response.status, 201, JSON.stringify(response.body));
      return response.body.id as string;
    };
    ids.draft = await prompt('Draft summary', { folderId: ids.drafts });
    ids.secret = await prompt('Merger notes', {
      folderId: ids.drafts,
      classification: 'restricted',
    });
    ids.budget = await prompt('Budget', { folderId: ids.finance });
    ids.support = await prompt('Support greeting', { projectId: ids.project });
  });

  after(async function () {
    await test?.close();
  });

  it('folder grant: subtree only', async function () {
    const auditor = await test.userWithRole('auditor');
    const auditorId = await userIdOf(admin, auditor.username);
    assert.equal((await auditor.client.get('/prompts')).status, 403);

    const granted = await admin.post('/access/grants', {
      userId: auditorId,
      role: 'author',
      scope: { type: 'folder', id: ids.research },
    });
    assert.equal(granted.status, 201, JSON.stringify(granted.body));

    const listed = await auditor.client.get('/prompts');
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.items.map((item: { title: string }) => item.title).sort(), [
      'Draft summary',
      'Merger notes',
    ]);
    assert.equal((await auditor.client.get(`/prompts/${ids.draft}`)).status, 200);

    const outside = await auditor.client.get(`/prompts/${ids.budget}`);
    assert.equal(outside.status, 403);
    assert.match(
      outside.body.detail,
      new RegExp(`apply to folder ${ids.research}, not to this resource`),
    );

    const writeInside = await auditor.client.post('/prompts', {
      title: 'New draft',
      body: 'text',
      folderId: ids.drafts,
    });
    assert.equal(writeInside.status, 201);
    const writeOutside = await auditor.client.post('/prompts', {
      title: 'Leak',
      body: 'text',
      folderId: ids.finance,
    });
    assert.equal(writeOutside.status, 403);
    assert.equal(
      (await auditor.client.post(`/prompts/${ids.budget}/versions`, { body: 'changed' })).status,
      403,
    );

    const folders = await auditor.client.get('/folders');
    assert.ok(
      folders.body.items.some((folder: { id: string }) => folder.id === ids.finance),
      'the auditor role reads every folder',
    );
  });

  it('project grant: its prompts only', async function () {
    const analyst = await test.userWithRole('auditor');
    const analystId = await userIdOf(admin, analyst.username);
    await admin.post('/access/grants', {
      userId: analystId,
      role: 'author',
      scope: { type: 'project', id: ids.project },
    });

    const listed = await analyst.client.get('/prompts');
    assert.deepEqual(
      listed.body.items.map((item: { id: string }) => item.id),
      [ids.support],
    );
    assert.equal((await analyst.client.get(`/prompts/${ids.support}`)).body.projectId, ids.project);
    assert.equal((await analyst.client.get(`/prompts/${ids.draft}`)).status, 403);
  });

  it('classification limit hides prompts', async function () {
    const reader = await test.userWithRole('auditor');
    const readerId = await userIdOf(admin, reader.username);
    await admin.post('/access/grants', {
      userId: readerId,
      role: 'author',
      scope: { type: 'folder', id: ids.drafts },
      conditions: { maxClassification: 'confidential' },
    });

    const listed = await reader.client.get('/prompts');
    const titles = listed.body.items.map((item: { title: string }) => item.title);
    assert.ok(titles.includes('Draft summary'));
    assert.ok(!titles.includes('Merger notes'), 'the restricted prompt is left out');
    const restricted = await reader.client.get(`/prompts/${ids.secret}`);
    assert.equal(restricted.status, 403);
    assert.match(restricted.body.detail, /up to "confidential" and this is "restricted"/);

    const tooHigh = await reader.client.post('/prompts', {
      title: 'Above my limit',
      body: 'text',
      folderId: ids.drafts,
      classification: 'restricted',
    });
    assert.equal(tooHigh.status, 403);

    const badLabel = await admin.post('/prompts', {
      title: 'x',
      body: 'y',
      classification: 'top-secret',
    });
    assert.equal(badLabel.status, 400);
    assert.deepEqual(
      badLabel.body.errors.map((error: { field: string }) => error.field),
      ['classification'],
    );
  });

  it('project-limited API key: its prompts only', async function () {
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const created = await admin.post('/api-keys', {
      name: 'support bot',
      permissions: ['prompts:read', 'keys:read'],
      projectIds: [ids.project],
      expiresAt,
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.projectIds, [ids.project]);

    const bearer = (path: string) =>
      test
        .anonymous()
        .request('GET', path, undefined, { authorization: `Bearer ${created.body.key}` });
    const listed = await bearer('/prompts');
    assert.deepEqual(
      listed.body.items.map((item: { id: string }) => item.id),
      [ids.support],
    );
    assert.equal((await bearer(`/prompts/${ids.support}`)).status, 200);

    const outside = await bearer(`/prompts/${ids.draft}`);
    assert.equal(outside.status, 403);
    assert.match(outside.body.detail, /limited to projects .*this prompt is in no project/);

    const keys = await bearer('/keys');
    assert.equal(keys.status, 403);
    assert.match(keys.body.detail, /reaches prompts only/);

    const unknown = await admin.post('/api-keys', {
      name: 'typo',
      permissions: ['prompts:read'],
      projectIds: ['00000000-0000-4000-8000-000000000000'],
      expiresAt,
    });
    assert.equal(unknown.status, 400);
    assert.deepEqual(
      unknown.body.errors.map((error: { field: string }) => error.field),
      ['projectIds.0'],
    );
  });
});
