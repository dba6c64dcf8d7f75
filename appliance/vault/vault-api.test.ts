import assert from 'node:assert/strict';
import crypto from 'node:crypto';

import { QueryTypes } from 'sequelize';

import type { ApiClient, ApiResponse } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';
import type { Role } from '../identity/permissions';
import { limits } from './schemas';

function expectStatus(response: ApiResponse, status: number): void {
  assert.equal(
    response.status,
    status,
    `HTTP ${response.status}: ${JSON.stringify(response.body)}`,
  );
}

/** Asserts a 400 problem whose errors name `field`. */
function expectFieldError(response: ApiResponse, field: string): void {
  expectStatus(response, 400);
  assert.equal(response.body.type, 'urn:prompt-bank-appliance:problem:invalid_request');
  const fields = (response.body.errors ?? []).map((error: { field: string }) => error.field);
  assert.ok(
    fields.includes(field),
    `expected an error on ${field}, got ${JSON.stringify(response.body.errors)}`,
  );
}

describe('vault API @integration', () => {
  let app: TestAppliance;
  let admin: ApiClient;
  const clients = {} as Record<Role, ApiClient>;

  before(async () => {
    app = await startTestAppliance();
    admin = await app.admin();
    clients.admin = admin;
    for (const role of ['author', 'analyst', 'auditor'] as const) {
      clients[role] = (await app.userWithRole(role)).client;
    }
  });

  after(async () => {
    await app?.close();
  });

  async function userIdOf(client: ApiClient): Promise<string> {
    const me = await client.get('/auth/me');
    return me.body.user.id;
  }

  async function newPrompt(
    client: ApiClient = clients.author,
    fields: Record<string, unknown> = {},
  ) {
    const response = await client.post('/prompts', {
      title: 'Ticket summary',
      body: 'Summarise: {{ticket}}',
      ...fields,
    });
    expectStatus(response, 201);
    return response.body;
  }

  describe('folders', () => {
    it('creates nested folders and lists them', async () => {
      const parent = await clients.author.post('/folders', {
        name: `Red team ${crypto.randomUUID()}`,
      });
      expectStatus(parent, 201);
      const child = await clients.author.post('/folders', {
        name: 'Jailbreaks',
        parentId: parent.body.id,
      });
      expectStatus(child, 201);

      assert.deepEqual(Object.keys(child.body).sort(), ['createdAt', 'id', 'name', 'parentId']);
      assert.equal(child.body.parentId, parent.body.id);
      assert.equal(parent.body.parentId, null);

      const list = await clients.auditor.get('/folders');
      expectStatus(list, 200);
      const ids = list.body.items.map((folder: { id: string }) => folder.id);
      assert.ok(ids.includes(parent.body.id));
      assert.ok(ids.includes(child.body.id));
    });

    it('rejects a repeated name at one level', async () => {
      const name = `Dup ${crypto.randomUUID()}`;
      expectStatus(await clients.author.post('/folders', { name }), 201);

      const again = await clients.author.post('/folders', { name });

      expectStatus(again, 409);
    });

    it('names a bad parentId and a missing name', async () => {
      expectFieldError(
        await clients.author.post('/folders', { name: 'x', parentId: crypto.randomUUID() }),
        'parentId',
      );
      expectFieldError(
        await clients.author.post('/folders', { name: 'x', parentId: 'seven' }),
        'parentId',
      );
      expectFieldError(await clients.author.post('/folders', {}), 'name');
    });
  });

  describe('prompts', () => {
    it('creates a prompt and reads it back', async () => {
      const folder = (
        await clients.author.post('/folders', { name: `Support ${crypto.randomUUID()}` })
      ).body;
      const authorId = await userIdOf(clients.author);

      const created = await newPrompt(clients.author, {
        folderId: folder.id,
        description: 'For the help desk',
        tags: ['support', 'summary'],
      });

      assert.deepEqual(Object.keys(created).sort(), [
        'archived',
        'classification',
        'createdAt',
        'description',
        'folderId',
        'id',
        'latestVersion',
        'projectId',
        'tags',
        'title',
        'updatedAt',
        'version',
      ]);
      assert.equal(created.folderId, folder.id);
      assert.equal(created.projectId, null);
      assert.equal(created.classification, 'internal');
      assert.equal(created.title, 'Ticket summary');
      assert.equal(created.description, 'For the help desk');
      assert.deepEqual(created.tags, ['support', 'summary']);
      assert.equal(created.latestVersion, 1);
      assert.equal(created.archived, false);
      assert.deepEqual(created.version, {
        number: 1,
        note: null,
        createdAt: created.createdAt,
        createdBy: authorId,
        body: 'Summarise: {{ticket}}',
      });

      const read = await clients.analyst.get(`/prompts/${created.id}`);
      expectStatus(read, 200);
      assert.deepEqual(read.body, created);
    });

    it('stores a prompt without optional fields', async () => {
      const created = await newPrompt();

      assert.equal(created.folderId, null);
      assert.equal(created.description, null);
      assert.deepEqual(created.tags, []);
    });

    it('lists prompts by folder and archive state', async () => {
      const folder = (
        await clients.author.post('/folders', { name: `List ${crypto.randomUUID()}` })
      ).body;
      const inFolder = await newPrompt(clients.author, { folderId: folder.id, title: 'In folder' });
      const elsewhere = await newPrompt(clients.author, { title: 'Elsewhere' });

      const byFolder = await clients.analyst.get(
        `/prompts?folderId=${folder.id}&includeArchived=false`,
      );
      expectStatus(byFolder, 200);
      assert.deepEqual(
        byFolder.body.items.map((item: { id: string }) => item.id),
        [inFolder.id],
      );
      assert.deepEqual(Object.keys(byFolder.body.items[0]).sort(), [
        'archived',
        'classification',
        'createdAt',
        'folderId',
        'id',
        'latestVersion',
        'projectId',
        'tags',
        'title',
        'updatedAt',
      ]);

      expectStatus(await clients.author.post(`/prompts/${inFolder.id}/archive`), 200);

      const active = await clients.analyst.get(
        `/prompts?folderId=${folder.id}&includeArchived=false`,
      );
      assert.deepEqual(active.body.items, []);
      const withArchived = await clients.analyst.get(
        `/prompts?folderId=${folder.id}&includeArchived=true`,
      );
      assert.equal(withArchived.body.items.length, 1);
      assert.equal(withArchived.body.items[0].archived, true);

      const all = await clients.analyst.get('/prompts');
      const allIds = all.body.items.map((item: { id: string }) => item.id);
      assert.ok(allIds.includes(elsewhere.id));
      assert.equal(allIds.includes(inFolder.id), false);
    });

    it('adds versions and keeps the earlier ones', async () => {
      const created = await newPrompt(clients.author, { title: 'First title', body: 'first body' });

      const next = await clients.admin.post(`/prompts/${created.id}/versions`, {
        body: 'second body',
        note: 'Tightened the wording',
        title: 'Second title',
      });
      expectStatus(next, 201);
      assert.equal(next.body.latestVersion, 2);
      assert.equal(next.body.title, 'Second title');
      assert.equal(next.body.version.number, 2);
      assert.equal(next.body.version.body, 'second body');
      assert.equal(next.body.version.note, 'Tightened the wording');
      assert.equal(next.body.version.createdBy, await userIdOf(clients.admin));

      const versions = await clients.analyst.get(`/prompts/${created.id}/versions`);
      expectStatus(versions, 200);
      assert.deepEqual(
        versions.body.items.map((item: { number: number; note: string | null }) => [
          item.number,
          item.note,
        ]),
        [
          [2, 'Tightened the wording'],
          [1, null],
        ],
      );
      assert.equal('body' in versions.body.items[0], false);

      const first = await clients.analyst.get(`/prompts/${created.id}/versions/1`);
      expectStatus(first, 200);
      assert.equal(first.body.body, 'first body');

      const read = await clients.analyst.get(`/prompts/${created.id}`);
      assert.equal(read.body.title, 'Second title');
      assert.equal(read.body.version.body, 'second body');
    });

    it('keeps the title when a version sends none', async () => {
      const created = await newPrompt(clients.author, { title: 'Stays' });

      const next = await clients.author.post(`/prompts/${created.id}/versions`, {
        body: 'new body',
      });

      expectStatus(next, 201);
      assert.equal(next.body.title, 'Stays');
      assert.equal(next.body.version.note, null);
    });

    it('rejects a new version of an archived prompt', async () => {
      const created = await newPrompt();
      const archived = await clients.author.post(`/prompts/${created.id}/archive`);
      expectStatus(archived, 200);
      assert.equal(archived.body.archived, true);
      assert.equal(archived.body.version.body, created.version.body);

      const rejected = await clients.author.post(`/prompts/${created.id}/versions`, {
        body: 'too late',
      });

      expectStatus(rejected, 409);
      assert.match(rejected.body.detail, /archived/);
      const versions = await clients.author.get(`/prompts/${created.id}/versions`);
      assert.equal(versions.body.items.length, 1);
    });

    it('archives an archived prompt again without change', async () => {
      const created = await newPrompt();
      const first = await clients.author.post(`/prompts/${created.id}/archive`);

      const second = await clients.author.post(`/prompts/${created.id}/archive`);

      expectStatus(second, 200);
      assert.deepEqual(second.body, first.body);
    });

    it('returns 404 for unknown ids', async () => {
      const unknown = crypto.randomUUID();
      const existing = await newPrompt();

      for (const response of [
        await clients.analyst.get(`/prompts/${unknown}`),
        await clients.analyst.get(`/prompts/${unknown}/versions`),
        await clients.analyst.get(`/prompts/${unknown}/versions/1`),
        await clients.analyst.get(`/prompts/${existing.id}/versions/2`),
        await clients.analyst.get(`/prompts?folderId=${unknown}`),
        await clients.author.post(`/prompts/${unknown}/versions`, { body: 'x' }),
        await clients.author.post(`/prompts/${unknown}/archive`),
      ]) {
        expectStatus(response, 404);
        assert.equal(response.body.type, 'urn:prompt-bank-appliance:problem:not_found');
      }
    });
  });

  describe('input checks', () => {
    const valid = { title: 'Valid', body: 'Valid body' };
    const badPrompts: Array<[string, Record<string, unknown>, string]> = [
      ['missing title', { body: 'x' }, 'title'],
      ['blank title', { ...valid, title: '   ' }, 'title'],
      ['long title', { ...valid, title: 't'.repeat(limits.titleChars + 1) }, 'title'],
      ['title with a line break', { ...valid, title: 'one\ntwo' }, 'title'],
      ['missing body', { title: 'x' }, 'body'],
      ['blank body', { ...valid, body: ' \n ' }, 'body'],
      ['numeric body', { ...valid, body: 42 }, 'body'],
      ['folderId not a UUID', { ...valid, folderId: 'team' }, 'folderId'],
      ['unknown folderId', { ...valid, folderId: crypto.randomUUID() }, 'folderId'],
      [
        'long description',
        { ...valid, description: 'd'.repeat(limits.descriptionChars + 1) },
        'description',
      ],
      ['tags not a list', { ...valid, tags: 'a,b' }, 'tags'],
      ['empty tag', { ...valid, tags: ['ok', ''] }, 'tags.1'],
      ['repeated tag', { ...valid, tags: ['pii', 'pii'] }, 'tags'],
      [
        'too many tags',
        { ...valid, tags: Array.from({ length: limits.tags + 1 }, (_, i) => `t${i}`) },
        'tags',
      ],
    ];

    for (const [name, body, field] of badPrompts) {
      it(`names ${field} for ${name}`, async () => {
        const response = await clients.author.post('/prompts', body);

        expectFieldError(response, field);
      });
    }

    it('names the fields of a bad version', async () => {
      const created = await newPrompt();

      expectFieldError(await clients.author.post(`/prompts/${created.id}/versions`, {}), 'body');
      expectFieldError(
        await clients.author.post(`/prompts/${created.id}/versions`, { body: 'x', title: '' }),
        'title',
      );
      expectFieldError(
        await clients.author.post(`/prompts/${created.id}/versions`, { body: 'x', note: 7 }),
        'note',
      );
    });

    it('names bad path and query parameters', async () => {
      const created = await newPrompt();

      expectFieldError(await clients.analyst.get('/prompts/not-a-uuid'), 'params.id');
      expectFieldError(
        await clients.analyst.get(`/prompts/${created.id}/versions/0`),
        'params.number',
      );
      expectFieldError(
        await clients.analyst.get(`/prompts/${created.id}/versions/one`),
        'params.number',
      );
      expectFieldError(
        await clients.analyst.get('/prompts?includeArchived=yes'),
        'query.includeArchived',
      );
      expectFieldError(await clients.analyst.get('/prompts?folderId=7'), 'query.folderId');
    });

    it('accepts a body at the size limit', async () => {
      const body = 'é'.repeat(limits.bodyBytes / 2);

      const created = await newPrompt(clients.author, { body });

      assert.equal(created.version.body, body);
    });

    it('rejects a body over the size limit with 413', async () => {
      const response = await clients.author.post('/prompts', {
        title: 'Big',
        body: 'é'.repeat(limits.bodyBytes / 2) + 'x',
      });

      expectStatus(response, 413);
      assert.deepEqual(
        response.body.errors.map((error: { field: string }) => error.field),
        ['body'],
      );
      assert.match(response.body.detail, /262144 bytes/);
    });

    it('rejects a version body over the size limit with 413', async () => {
      const created = await newPrompt();

      const response = await clients.author.post(`/prompts/${created.id}/versions`, {
        body: 'x'.repeat(limits.bodyBytes + 1),
      });

      expectStatus(response, 413);
      const versions = await clients.author.get(`/prompts/${created.id}/versions`);
      assert.equal(versions.body.items.length, 1);
    });

    it('rejects a request over the HTTP body limit with 413', async () => {
      const response = await clients.author.post('/prompts', {
        title: 'Huge',
        body: 'x'.repeat(app.appliance.config.maxBodyBytes + 1),
      });

      expectStatus(response, 413);
      assert.equal(response.body.type, 'urn:prompt-bank-appliance:problem:payload_too_large');
    });

    it('rejects malformed JSON with 400', async () => {
      const response = await clients.author.request('POST', '/prompts', '{"title": ');

      expectStatus(response, 400);
    });
  });

  describe('roles', () => {
    const expected: Array<[string, Record<Role, boolean>]> = [
      ['GET /folders', { admin: true, author: true, analyst: true, auditor: true }],
      ['POST /folders', { admin: true, author: true, analyst: false, auditor: false }],
      ['GET /prompts', { admin: true, author: true, analyst: true, auditor: false }],
      ['POST /prompts', { admin: true, author: true, analyst: false, auditor: false }],
      ['GET /prompts/:id', { admin: true, author: true, analyst: true, auditor: false }],
      ['GET /prompts/:id/versions', { admin: true, author: true, analyst: true, auditor: false }],
      ['GET /prompts/:id/versions/1', { admin: true, author: true, analyst: true, auditor: false }],
      ['POST /prompts/:id/versions', { admin: true, author: true, analyst: false, auditor: false }],
      ['POST /prompts/:id/archive', { admin: true, author: true, analyst: false, auditor: false }],
    ];

    async function call(client: ApiClient, request: string): Promise<ApiResponse> {
      const [method, template] = request.split(' ');
      const path = template.replace(':id', (await newPrompt(clients.admin)).id);
      const bodies: Record<string, unknown> = {
        'POST /folders': { name: `Folder ${crypto.randomUUID()}` },
        'POST /prompts': { title: 'Role check', body: 'body' },
        'POST /prompts/:id/versions': { body: 'next' },
      };
      return client.request(method, path, bodies[request]);
    }

    for (const [request, allowed] of expected) {
      for (const role of ['admin', 'author', 'analyst', 'auditor'] as const) {
        it(`${allowed[role] ? 'allows' : 'denies'} ${role}: ${request}`, async () => {
          const response = await call(clients[role], request);

          if (allowed[role]) {
            assert.ok(
              [200, 201].includes(response.status),
              `HTTP ${response.status}: ${JSON.stringify(response.body)}`,
            );
          } else {
            expectStatus(response, 403);
            assert.equal(response.body.type, 'urn:prompt-bank-appliance:problem:forbidden');
          }
        });
      }
    }

    it('refuses a request without a session', async () => {
      expectStatus(await app.anonymous().get('/prompts'), 401);
      expectStatus(await app.anonymous().post('/prompts', { title: 'x', body: 'y' }), 401);
    });
  });

  describe('audit', () => {
    interface AuditRow {
      action: string;
      resource_type: string;
      resource_id: string | null;
      outcome: string;
      actor_username: string | null;
      reason: string | null;
    }

    async function auditRows(requestIds: string[]): Promise<AuditRow[]> {
      return app.appliance.database.sequelize.query<AuditRow>(
        'SELECT * FROM audit_records WHERE request_id IN (:requestIds) ORDER BY seq',
        { type: QueryTypes.SELECT, replacements: { requestIds } },
      );
    }

    it('records every single-prompt read as vault.prompt.read with the prompt id', async () => {
      const created = await newPrompt();

      const responses = [
        await clients.analyst.get(`/prompts/${created.id}`),
        await clients.analyst.get(`/prompts/${created.id}/versions/1`),
      ];

      const rows = await auditRows(
        responses.map((response) => String(response.headers['x-request-id'])),
      );
      assert.equal(rows.length, 2);
      for (const row of rows) {
        assert.equal(row.action, 'vault.prompt.read');
        assert.equal(row.resource_type, 'prompt');
        assert.equal(row.resource_id, created.id);
        assert.equal(row.outcome, 'success');
      }
    });

    it('records writes and lists with their actions', async () => {
      const folder = await clients.author.post('/folders', {
        name: `Audit ${crypto.randomUUID()}`,
      });
      const prompt = await clients.author.post('/prompts', { title: 'Audited', body: 'b' });
      const version = await clients.author.post(`/prompts/${prompt.body.id}/versions`, {
        body: 'c',
      });
      const archive = await clients.author.post(`/prompts/${prompt.body.id}/archive`);
      const list = await clients.author.get('/prompts');
      const versions = await clients.author.get(`/prompts/${prompt.body.id}/versions`);
      const folders = await clients.author.get('/folders');

      const responses = [folder, prompt, version, archive, list, versions, folders];
      const rows = await auditRows(
        responses.map((response) => String(response.headers['x-request-id'])),
      );
      assert.deepEqual(
        rows.map((row) => [row.action, row.resource_id]),
        [
          ['vault.folder.create', folder.body.id],
          ['vault.prompt.create', prompt.body.id],
          ['vault.version.create', prompt.body.id],
          ['vault.prompt.archive', prompt.body.id],
          ['vault.prompt.list', null],
          ['vault.version.list', prompt.body.id],
          ['vault.folder.list', null],
        ],
      );
    });

    it('records a failed read and a bad request without content', async () => {
      const unknown = crypto.randomUUID();
      const missing = await clients.analyst.get(`/prompts/${unknown}`);
      const bad = await clients.author.post('/prompts', { title: 'secret-title-text', body: '' });

      const rows = await auditRows(
        [missing, bad].map((response) => String(response.headers['x-request-id'])),
      );
      assert.deepEqual(
        rows.map((row) => [row.action, row.resource_id, row.outcome, row.reason]),
        [
          ['vault.prompt.read', unknown, 'failure', 'not_found'],
          ['vault.prompt.create', null, 'failure', 'invalid_request: body'],
        ],
      );
    });

    it('keeps the audit chain valid', async () => {
      const response = await clients.admin.get('/audit/verify');

      expectStatus(response, 200);
      assert.equal(response.body.ok, true, JSON.stringify(response.body));
      assert.ok(response.body.checked > 0);
    });
  });
});
