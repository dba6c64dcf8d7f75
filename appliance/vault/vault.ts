import crypto from 'node:crypto';

import type { Transaction } from 'sequelize';

import type { Classification } from '../identity/access/scope';
import type { KeyProvider } from '../../hsm/key-provider';
import { problems, ProblemError } from '../http/problem';
import type { Database } from '../platform/database';
import { logger } from '../platform/logger';
import type { DataKeyCacheOptions } from './data-key-cache';
import {
  EnvelopeEncryption,
  type DataKeyCreatedHook,
  type PromptEncryption,
  type PromptSealer,
} from './envelope';
import { IntegrityError, type FieldLocation } from './field-cipher';
import {
  PromptStore,
  type FolderRow,
  type PromptRow,
  type VersionRow,
  type VersionSummaryRow,
} from './store';

export interface Folder {
  id: string;
  name: string;
  parentId: string | null;
  createdAt: string;
}

/** A prompt as listed, without description and version body. */
export interface PromptSummary {
  id: string;
  folderId: string | null;
  title: string;
  latestVersion: number;
  archived: boolean;
  createdAt: string;
  updatedAt: string;
  tags: string[];
  /** Project the prompt was created in, or null. A prompt never changes project. */
  projectId: string | null;
  classification: Classification;
}

export interface VersionSummary {
  number: number;
  note: string | null;
  createdAt: string;
  /** User id of the account that created the version. */
  createdBy: string;
}

export interface PromptVersion extends VersionSummary {
  body: string;
}

/** A prompt with its latest version. */
export interface Prompt extends PromptSummary {
  description: string | null;
  version: PromptVersion;
}

export interface NewFolder {
  name: string;
  parentId?: string;
}

export interface NewPrompt {
  title: string;
  body: string;
  folderId?: string;
  description?: string;
  tags?: string[];
  /** Project whose key wraps the data key; a customer-keyed project's tenant key, else the master key. */
  projectId?: string;
  /** Data classification label; `internal` when left out. */
  classification?: Classification;
}

export interface NewVersion {
  body: string;
  note?: string;
  title?: string;
}

/** The placement of a prompt (project, folder, classification), which access decisions need. */
export interface PromptPlacement {
  folderId: string | null;
  projectId: string | null;
  classification: Classification;
}

function placementOf(row: PromptRow): PromptPlacement {
  return {
    folderId: row.folder_id,
    projectId: row.project_id ?? null,
    classification: row.classification,
  };
}

/** Runs a write in the request's transaction, with its audit record (RouteContext.commit). */
export type Commit = <T>(work: (transaction: Transaction) => Promise<T>) => Promise<T>;

export interface VaultOptions {
  /**
   * Replaces the HSM envelope encryption. The runtime never passes it; the
   * benchmark passes a plaintext one to measure what encryption costs.
   */
  encryption?: PromptEncryption;
  /** Limits of the cache of unwrapped data keys. */
  dataKeyCache?: DataKeyCacheOptions;
  /** Runs in each new prompt's create transaction with its data key (escrow). */
  onDataKeyCreated?: DataKeyCreatedHook;
}

/** Builds the vault over the appliance database, its prompt content sealed under keys wrapped by `keys`. */
export function createVault(
  database: Database,
  keys: KeyProvider,
  options: VaultOptions = {},
): Vault {
  const encryption =
    options.encryption ??
    new EnvelopeEncryption(database, keys, options.dataKeyCache, options.onDataKeyCreated);
  return new Vault(new PromptStore(database), encryption);
}

/** Content of the prompt record, opened. */
interface PromptContent {
  title: string;
  description: string | null;
  tags: string[];
}

/** Builds the problem for a stored record that fails authentication; it carries no content or key material. */
export function integrityProblem(promptId: string): ProblemError {
  return new ProblemError(
    409,
    'integrity_check_failed',
    'Stored record failed its integrity check',
    `The stored record of prompt ${promptId} failed its integrity check, so it was not returned or changed. It was altered outside the appliance or copied from another row; restore it from a backup.`,
  );
}

/**
 * The prompt vault: folders, prompts and their immutable versions, with all
 * prompt content sealed per prompt. Writes take the request's `commit`, so
 * each lands with its audit record or not at all.
 */
export class Vault {
  constructor(
    private readonly store: PromptStore,
    private readonly encryption: PromptEncryption,
  ) {}

  async listFolders(): Promise<Folder[]> {
    return (await this.store.listFolders()).map(presentFolder);
  }

  createFolder(input: NewFolder, actorId: string, commit: Commit): Promise<Folder> {
    return commit(async (transaction) => {
      const parentId = input.parentId ?? null;
      if (parentId !== null && !(await this.store.findFolder(parentId, transaction))) {
        throw fieldProblem(
          'parentId',
          'names no folder; pick one from GET /api/v1/folders or leave it out',
        );
      }
      if (await this.store.hasSibling(parentId, input.name, transaction)) {
        throw problems.conflict(
          `A folder named "${input.name}" already exists at that level; choose another name.`,
        );
      }

      const row: FolderRow = {
        id: crypto.randomUUID(),
        name: input.name,
        parent_id: parentId,
        created_by: actorId,
        created_at: new Date().toISOString(),
      };
      await this.store.insertFolder(row, transaction);
      return presentFolder(row);
    });
  }

  /** Lists prompts; `visible` drops those the caller may not read before any key is unwrapped. */
  async listPrompts(
    filter: { folderId?: string; includeArchived: boolean },
    visible: (prompt: PromptPlacement) => boolean = () => true,
  ): Promise<PromptSummary[]> {
    if (filter.folderId !== undefined && !(await this.store.findFolder(filter.folderId))) {
      throw problems.notFound(`Folder ${filter.folderId}`);
    }

    // NOTE: the list is not paginated because the console loads it whole. With more prompts than
    // the data key cache holds, every list call unwraps the keys that do not fit, one HSM call each.
    const items: PromptSummary[] = [];
    for (const row of await this.store.listPrompts(filter)) {
      if (!visible(placementOf(row))) continue;
      const content = await this.guard(row.id, async () =>
        openContent(await this.sealerOf(row), row),
      );
      items.push(presentSummary(row, content));
    }
    return items;
  }

  createPrompt(input: NewPrompt, actorId: string, commit: Commit): Promise<Prompt> {
    return commit(async (transaction) => {
      const folderId = input.folderId ?? null;
      if (folderId !== null && !(await this.store.findFolder(folderId, transaction))) {
        throw fieldProblem(
          'folderId',
          'names no folder; pick one from GET /api/v1/folders or leave it out',
        );
      }

      const id = crypto.randomUUID();
      const now = new Date().toISOString();
      const key = this.encryption.createKey(id, input.projectId);
      const content: PromptContent = {
        title: input.title,
        description: input.description || null,
        tags: input.tags ?? [],
      };

      const row: PromptRow = {
        id,
        folder_id: folderId,
        key_version: key.sealer.keyVersion,
        ...sealContent(key.sealer, id, content),
        latest_version: 1,
        archived: 0,
        archived_at: null,
        created_by: actorId,
        created_at: now,
        updated_at: now,
        project_id: input.projectId ?? null,
        classification: input.classification ?? 'internal',
      };
      const version = sealVersion(
        key.sealer,
        id,
        1,
        { body: input.body, note: null },
        actorId,
        now,
      );

      await this.store.insertPrompt(row, transaction);
      await key.save(transaction);
      await this.store.insertVersion(version, transaction);

      return presentPrompt(row, content, presentVersion(version, input.body, null));
    });
  }

  /** Returns the placement of a prompt for access decisions, or a 404 for an unknown id. Opens no content. */
  async placement(id: string): Promise<PromptPlacement> {
    return placementOf(await this.requirePrompt(id));
  }

  async getPrompt(id: string): Promise<Prompt> {
    const row = await this.requirePrompt(id);
    return this.openPrompt(row);
  }

  async listVersions(id: string): Promise<VersionSummary[]> {
    await this.requirePrompt(id);

    const items: VersionSummary[] = [];
    for (const row of await this.store.listVersions(id)) {
      const note = await this.guard(id, async () => openNote(await this.sealerOf(row), row));
      items.push(presentVersionSummary(row, note));
    }
    return items;
  }

  async getVersion(id: string, number: number): Promise<PromptVersion> {
    await this.requirePrompt(id);

    const row = await this.store.findVersion(id, number);
    if (!row) throw problems.notFound(`Version ${number} of prompt ${id}`);
    return this.openVersion(row);
  }

  /** Adds the next version; versions already written never change. */
  createVersion(id: string, input: NewVersion, actorId: string, commit: Commit): Promise<Prompt> {
    return commit(async (transaction) => {
      const row = await this.requirePrompt(id, transaction);
      if (row.archived) {
        throw problems.conflict(
          `Prompt ${id} is archived; an archived prompt keeps its versions and takes no new ones.`,
        );
      }

      // Opening the stored record first means a record that fails its integrity check gets no new version.
      const sealer = await this.guard(id, () => this.sealerOf(row, transaction));
      const stored = await this.guard(id, () => openContent(sealer, row));
      const content: PromptContent = { ...stored, title: input.title ?? stored.title };

      const now = new Date().toISOString();
      const number = row.latest_version + 1;
      const note = input.note || null;
      const version = sealVersion(sealer, id, number, { body: input.body, note }, actorId, now);
      const titleSealed =
        input.title !== undefined ? sealer.seal(location(id, 0, 'title'), input.title) : undefined;

      await this.store.insertVersion(version, transaction);
      await this.store.advanceVersion(
        id,
        { latestVersion: number, titleSealed, updatedAt: now },
        transaction,
      );

      const updated: PromptRow = { ...row, latest_version: number, updated_at: now };
      return presentPrompt(updated, content, presentVersion(version, input.body, note));
    });
  }

  /** Archives a prompt; archiving an archived prompt changes nothing and returns it. */
  archivePrompt(id: string, commit: Commit): Promise<Prompt> {
    return commit(async (transaction) => {
      const row = await this.requirePrompt(id, transaction);
      const prompt = await this.openPrompt(row, transaction);
      if (row.archived) return prompt;

      const now = new Date().toISOString();
      await this.store.archivePrompt(id, now, transaction);
      return { ...prompt, archived: true, updatedAt: now };
    });
  }

  /** Zeroes the cached data keys. */
  close(): void {
    this.encryption.close();
  }

  private async requirePrompt(id: string, transaction?: Transaction): Promise<PromptRow> {
    const row = await this.store.findPrompt(id, transaction);
    if (!row) throw problems.notFound(`Prompt ${id}`);
    return row;
  }

  private async openPrompt(row: PromptRow, transaction?: Transaction): Promise<Prompt> {
    const versionRow = await this.store.findVersion(row.id, row.latest_version, transaction);

    return this.guard(row.id, async () => {
      if (!versionRow) throw new IntegrityError(row.id, `version ${row.latest_version} (missing)`);

      const content = openContent(await this.sealerOf(row, transaction), row);
      const version = await this.openVersion(versionRow, transaction);
      return presentPrompt(row, content, version);
    });
  }

  private openVersion(row: VersionRow, transaction?: Transaction): Promise<PromptVersion> {
    return this.guard(row.prompt_id, async () => {
      const sealer = await this.sealerOf(row, transaction);
      const body = sealer.open(location(row.prompt_id, row.number, 'body'), row.body_sealed);
      return presentVersion(row, body, openNote(sealer, row));
    });
  }

  private sealerOf(
    row: PromptRow | VersionSummaryRow,
    transaction?: Transaction,
  ): Promise<PromptSealer> {
    const promptId = 'prompt_id' in row ? row.prompt_id : row.id;
    return this.encryption.sealerFor(promptId, row.key_version, transaction);
  }

  /** Runs `work`, turning an IntegrityError into the integrity problem after logging it. */
  private async guard<T>(promptId: string, work: () => T | Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;

      logger.error(
        { promptId, part: error.part },
        'stored prompt record failed its integrity check',
      );
      throw integrityProblem(promptId);
    }
  }
}

function location(promptId: string, version: number, field: FieldLocation['field']): FieldLocation {
  return { promptId, version, field };
}

/** Seals the fields of the prompt record; they are bound to version 0, the record itself. */
function sealContent(sealer: PromptSealer, promptId: string, content: PromptContent) {
  return {
    title_sealed: sealer.seal(location(promptId, 0, 'title'), content.title),
    description_sealed:
      content.description === null
        ? null
        : sealer.seal(location(promptId, 0, 'description'), content.description),
    tags_sealed: sealer.seal(location(promptId, 0, 'tags'), JSON.stringify(content.tags)),
  };
}

function openContent(sealer: PromptSealer, row: PromptRow): PromptContent {
  const title = sealer.open(location(row.id, 0, 'title'), row.title_sealed);
  const description =
    row.description_sealed === null
      ? null
      : sealer.open(location(row.id, 0, 'description'), row.description_sealed);
  const tags = JSON.parse(sealer.open(location(row.id, 0, 'tags'), row.tags_sealed)) as string[];
  return { title, description, tags };
}

function sealVersion(
  sealer: PromptSealer,
  promptId: string,
  number: number,
  content: { body: string; note: string | null },
  actorId: string,
  createdAt: string,
): VersionRow {
  return {
    prompt_id: promptId,
    number,
    key_version: sealer.keyVersion,
    body_sealed: sealer.seal(location(promptId, number, 'body'), content.body),
    note_sealed:
      content.note === null ? null : sealer.seal(location(promptId, number, 'note'), content.note),
    created_by: actorId,
    created_at: createdAt,
  };
}

function openNote(sealer: PromptSealer, row: VersionSummaryRow): string | null {
  return row.note_sealed === null
    ? null
    : sealer.open(location(row.prompt_id, row.number, 'note'), row.note_sealed);
}

function fieldProblem(field: string, message: string): ProblemError {
  return problems.invalidRequest(`${field}: ${message}`, [{ field, message }]);
}

function presentFolder(row: FolderRow): Folder {
  return { id: row.id, name: row.name, parentId: row.parent_id, createdAt: row.created_at };
}

function presentSummary(row: PromptRow, content: PromptContent): PromptSummary {
  return {
    id: row.id,
    folderId: row.folder_id,
    title: content.title,
    latestVersion: row.latest_version,
    archived: Boolean(row.archived),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    tags: content.tags,
    projectId: row.project_id ?? null,
    classification: row.classification,
  };
}

function presentVersionSummary(row: VersionSummaryRow, note: string | null): VersionSummary {
  return { number: row.number, note, createdAt: row.created_at, createdBy: row.created_by };
}

function presentVersion(row: VersionSummaryRow, body: string, note: string | null): PromptVersion {
  return { ...presentVersionSummary(row, note), body };
}

function presentPrompt(row: PromptRow, content: PromptContent, version: PromptVersion): Prompt {
  return { ...presentSummary(row, content), description: content.description, version };
}
