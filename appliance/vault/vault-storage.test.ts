import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { QueryTypes } from 'sequelize';

import type { KeyProvider } from '../../hsm/key-provider';
import { ProblemError } from '../http/problem';
import { isPlainSqlite } from '../platform/database-encryption';
import type { ApiClient, ApiResponse } from '../testing/api-client';
import { startTestAppliance, type TestAppliance } from '../testing/harness';
import { createVault, type Commit } from './vault';

const integrityType = 'urn:prompt-bank-appliance:problem:integrity_check_failed';

function expectStatus(response: ApiResponse, status: number): void {
  assert.equal(
    response.status,
    status,
    `HTTP ${response.status}: ${JSON.stringify(response.body)}`,
  );
}

/** Reads the raw bytes of the SQLite file and of its WAL and shared-memory files. */
function databaseFiles(app: TestAppliance): Map<string, Buffer> {
  const file = app.appliance.config.databaseFile;
  const files = new Map<string, Buffer>();
  for (const name of [file, `${file}-wal`, `${file}-shm`]) {
    if (fs.existsSync(name)) files.set(path.basename(name), fs.readFileSync(name));
  }
  return files;
}

function occurrences(files: Map<string, Buffer>, text: string): string[] {
  const found: string[] = [];
  for (const [name, bytes] of files) {
    for (const encoding of ['utf8', 'utf16le'] as const) {
      if (bytes.includes(Buffer.from(text, encoding))) found.push(`${name} (${encoding})`);
    }
  }
  return found;
}

describe('vault storage @integration', () => {
  describe('plaintext on disk', () => {
    let app: TestAppliance;
    let closed = false;

    before(async () => {
      app = await startTestAppliance();
    });

    after(async () => {
      if (!closed) await app?.appliance.close();
      if (app) fs.rmSync(app.dataDir, { recursive: true, force: true });
    });

    it('keeps prompt content out of the database files', async () => {
      const marker = `marker${crypto.randomBytes(16).toString('hex')}`;
      const control = `folder${crypto.randomBytes(16).toString('hex')}`;
      const admin = await app.admin();

      // Folder names are stored in plaintext, so finding this one proves the search reads the right bytes.
      const folder = await admin.post('/folders', { name: control });
      expectStatus(folder, 201);
      const created = await admin.post('/prompts', {
        title: `title ${marker}`,
        body: `body ${marker} `.repeat(50),
        description: `description ${marker}`,
        tags: [`tag-${marker}`, 'plain'],
        folderId: folder.body.id,
      });
      expectStatus(created, 201);
      const next = await admin.post(`/prompts/${created.body.id}/versions`, {
        body: `second ${marker}`,
        note: `note ${marker}`,
        title: `renamed ${marker}`,
      });
      expectStatus(next, 201);
      expectStatus(await admin.get(`/prompts/${created.body.id}`), 200);

      // With SQLCipher on, folder names are encrypted too, so the control is found only in a plain file.
      const plain = isPlainSqlite(app.appliance.config.databaseFile);
      const whileRunning = databaseFiles(app);
      assert.ok(
        (whileRunning.get('appliance.sqlite-wal')?.length ?? 0) > 0,
        'the WAL file holds the recent writes',
      );
      assert.equal(
        occurrences(whileRunning, control).length > 0,
        plain,
        'the folder name is found exactly when the database is plain SQLite',
      );
      assert.deepEqual(occurrences(whileRunning, marker), []);

      // Closing checkpoints the WAL into the main file.
      await app.appliance.close();
      closed = true;
      const afterClose = databaseFiles(app);
      assert.equal(
        occurrences(afterClose, control).length > 0,
        plain,
        'the folder name is found after close exactly when the database is plain SQLite',
      );
      assert.deepEqual(occurrences(afterClose, marker), []);
    });
  });

  describe('tampered records', () => {
    let app: TestAppliance;
    let admin: ApiClient;

    before(async () => {
      app = await startTestAppliance();
      admin = await app.admin();
    });

    after(async () => {
      await app?.close();
    });

    const query = (sql: string, replacements: Record<string, unknown>) =>
      app.appliance.database.sequelize.query(sql, { replacements });

    async function sealedTitle(id: string): Promise<Buffer> {
      const [row] = await app.appliance.database.sequelize.query<{ title_sealed: Buffer }>(
        'SELECT title_sealed FROM prompts WHERE id = :id',
        { type: QueryTypes.SELECT, replacements: { id } },
      );
      return row.title_sealed;
    }

    async function newPrompt(title: string) {
      const response = await admin.post('/prompts', {
        title,
        body: `${title} body`,
        tags: [title],
      });
      expectStatus(response, 201);
      return response.body;
    }

    it('rejects a title copied from another prompt and keeps the data', async () => {
      const source = await newPrompt('source');
      const target = await newPrompt('target');
      const original = await sealedTitle(target.id);
      await query('UPDATE prompts SET title_sealed = :title WHERE id = :id', {
        title: await sealedTitle(source.id),
        id: target.id,
      });

      const read = await admin.get(`/prompts/${target.id}`);
      expectStatus(read, 409);
      assert.equal(read.body.type, integrityType);
      assert.match(read.body.detail, /failed its integrity check/);
      assert.equal(JSON.stringify(read.body).includes('source'), false);

      const list = await admin.get('/prompts');
      expectStatus(list, 409);
      assert.equal(list.body.type, integrityType);

      const version = await admin.post(`/prompts/${target.id}/versions`, { body: 'must not land' });
      expectStatus(version, 409);
      assert.equal(version.body.type, integrityType);

      const archive = await admin.post(`/prompts/${target.id}/archive`);
      expectStatus(archive, 409);

      const untouched = await admin.get(`/prompts/${source.id}`);
      expectStatus(untouched, 200);
      assert.deepEqual(untouched.body, source);
      const body = await admin.get(`/prompts/${target.id}/versions/1`);
      expectStatus(body, 200);
      assert.equal(body.body.body, 'target body');

      await query('UPDATE prompts SET title_sealed = :title WHERE id = :id', {
        title: original,
        id: target.id,
      });
      const restored = await admin.get(`/prompts/${target.id}`);
      expectStatus(restored, 200);
      assert.deepEqual(restored.body, target);
    });

    it('rejects a description moved into the title', async () => {
      const response = await admin.post('/prompts', {
        title: 'moved',
        body: 'b',
        description: 'a description',
      });
      const id = response.body.id;
      await query('UPDATE prompts SET title_sealed = description_sealed WHERE id = :id', { id });

      const read = await admin.get(`/prompts/${id}`);

      expectStatus(read, 409);
      assert.equal(read.body.type, integrityType);
    });

    it('refuses to edit a stored version', async () => {
      const prompt = await newPrompt('immutable');

      await assert.rejects(
        query('UPDATE prompt_versions SET created_by = :who WHERE prompt_id = :id', {
          who: 'x',
          id: prompt.id,
        }),
        (error: { original?: Error }) => {
          assert.match(String(error.original?.message), /prompt versions are immutable/);
          return true;
        },
      );
    });

    it('rejects a data key copied from another prompt', async () => {
      const source = await newPrompt('key-source');
      const target = await newPrompt('key-target');
      await query(
        `UPDATE prompt_data_keys SET wrapped_key = (SELECT wrapped_key FROM prompt_data_keys WHERE prompt_id = :source)
         WHERE prompt_id = :target`,
        { source: source.id, target: target.id },
      );

      // A new vault starts with an empty key cache, so it has to unwrap the stored key.
      const vault = createVault(app.appliance.database, app.appliance.keys);
      try {
        await assert.rejects(vault.getPrompt(target.id), (error: unknown) => {
          assert.ok(error instanceof ProblemError);
          assert.equal(error.code, 'integrity_check_failed');
          return true;
        });
        assert.equal((await vault.getPrompt(source.id)).title, 'key-source');
      } finally {
        vault.close();
      }
    });

    it('rejects an altered wrapped key', async () => {
      const prompt = await newPrompt('altered-key');
      await query(`UPDATE prompt_data_keys SET wrapped_key = zeroblob(40) WHERE prompt_id = :id`, {
        id: prompt.id,
      });

      const vault = createVault(app.appliance.database, app.appliance.keys);
      try {
        await assert.rejects(vault.getPrompt(prompt.id), /failed its integrity check/);
      } finally {
        vault.close();
      }

      // SoftHSM runs in this process on Node's OpenSSL; its failed unwrap must not break the next TLS request.
      expectStatus(await admin.get('/auth/me'), 200);
    });

    it('keeps the audit chain valid', async () => {
      const response = await admin.get('/audit/verify');

      expectStatus(response, 200);
      assert.equal(response.body.ok, true, JSON.stringify(response.body));
    });
  });

  describe('data key cache', () => {
    let app: TestAppliance;

    before(async () => {
      app = await startTestAppliance();
    });

    after(async () => {
      await app?.close();
    });

    /** Wraps the appliance's real key provider to count its unwraps. */
    function countingKeys(keys: KeyProvider): { keys: KeyProvider; unwraps: () => number } {
      let unwraps = 0;
      const counting = Object.create(keys) as KeyProvider;
      counting.unwrapDataKey = (wrapped) => {
        unwraps += 1;
        return keys.unwrapDataKey(wrapped);
      };
      return { keys: counting, unwraps: () => unwraps };
    }

    const commit: Commit = (work) => app.appliance.database.write(work);

    it('unwraps a data key once while it is cached', async () => {
      const counter = countingKeys(app.appliance.keys);
      const writer = createVault(app.appliance.database, counter.keys);
      const prompt = await writer.createPrompt({ title: 'cached', body: 'b' }, 'test-user', commit);

      await writer.getPrompt(prompt.id);
      await writer.getVersion(prompt.id, 1);
      assert.equal(counter.unwraps(), 0, 'the key made at create time is cached after the commit');
      writer.close();

      let now = 0;
      const reader = createVault(app.appliance.database, counter.keys, {
        dataKeyCache: { ttlMs: 1000, now: () => now },
      });
      try {
        assert.equal((await reader.getPrompt(prompt.id)).title, 'cached');
        await reader.listVersions(prompt.id);
        assert.equal(counter.unwraps(), 1);

        now = 1000;
        await reader.getPrompt(prompt.id);
        assert.equal(counter.unwraps(), 2, 'an expired key is unwrapped again');
      } finally {
        reader.close();
      }
    });
  });
});
