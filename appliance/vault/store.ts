import { QueryTypes, type Transaction } from 'sequelize';

import type { Classification } from '../identity/access/scope';
import type { Database } from '../platform/database';

export interface FolderRow {
  id: string;
  name: string;
  parent_id: string | null;
  created_by: string;
  created_at: string;
}

export interface PromptRow {
  id: string;
  folder_id: string | null;
  key_version: number;
  title_sealed: Buffer;
  description_sealed: Buffer | null;
  tags_sealed: Buffer;
  latest_version: number;
  /** SQLite stores booleans as 0 or 1. */
  archived: number;
  archived_at: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  /** Data classification label: public, internal, confidential or restricted. */
  classification: Classification;
  /** From project_prompts; null for a prompt in no project. Not a column of prompts. */
  project_id: string | null;
}

export interface VersionRow {
  prompt_id: string;
  number: number;
  key_version: number;
  body_sealed: Buffer;
  note_sealed: Buffer | null;
  created_by: string;
  created_at: string;
}

/** A version row without its body, for version lists. */
export type VersionSummaryRow = Omit<VersionRow, 'body_sealed'>;

/** Prompt rows with the project each was created in (project_prompts comes from the tenants migration). */
const selectPrompts =
  'SELECT prompts.*, project_prompts.project_id FROM prompts LEFT JOIN project_prompts ON project_prompts.prompt_id = prompts.id';

/**
 * SQL over the vault tables. It sees only sealed content; sealing and
 * opening happen in the vault service. Methods that take a transaction run
 * inside the caller's write.
 */
export class PromptStore {
  constructor(private readonly database: Database) {}

  listFolders(): Promise<FolderRow[]> {
    return this.select<FolderRow>('SELECT * FROM folders ORDER BY name, id', {});
  }

  async findFolder(id: string, transaction?: Transaction): Promise<FolderRow | undefined> {
    const rows = await this.select<FolderRow>(
      'SELECT * FROM folders WHERE id = :id',
      { id },
      transaction,
    );
    return rows[0];
  }

  /** Returns whether `parentId` (null: the top level) already has a folder called `name`. */
  async hasSibling(
    parentId: string | null,
    name: string,
    transaction: Transaction,
  ): Promise<boolean> {
    const rows = await this.select<{ id: string }>(
      'SELECT id FROM folders WHERE parent_id IS :parentId AND name = :name LIMIT 1',
      { parentId, name },
      transaction,
    );
    return rows.length > 0;
  }

  async insertFolder(row: FolderRow, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      `INSERT INTO folders (id, name, parent_id, created_by, created_at)
       VALUES (:id, :name, :parent_id, :created_by, :created_at)`,
      { transaction, replacements: { ...row } },
    );
  }

  /** Lists prompts, most recently changed first. */
  listPrompts(filter: { folderId?: string; includeArchived: boolean }): Promise<PromptRow[]> {
    const conditions: string[] = [];
    if (filter.folderId !== undefined) conditions.push('folder_id = :folderId');
    if (!filter.includeArchived) conditions.push('archived = 0');
    const where = conditions.length ? `WHERE ${conditions.join(' AND ')}` : '';

    return this.select<PromptRow>(`${selectPrompts} ${where} ORDER BY updated_at DESC, id`, {
      folderId: filter.folderId ?? null,
    });
  }

  async findPrompt(id: string, transaction?: Transaction): Promise<PromptRow | undefined> {
    const rows = await this.select<PromptRow>(
      `${selectPrompts} WHERE id = :id`,
      { id },
      transaction,
    );
    return rows[0];
  }

  async insertPrompt(row: PromptRow, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      `INSERT INTO prompts (id, folder_id, key_version, title_sealed, description_sealed, tags_sealed,
         latest_version, archived, archived_at, created_by, created_at, updated_at, classification)
       VALUES (:id, :folder_id, :key_version, :title_sealed, :description_sealed, :tags_sealed,
         :latest_version, :archived, :archived_at, :created_by, :created_at, :updated_at, :classification)`,
      { transaction, replacements: { ...row } },
    );
  }

  /** Records a new latest version, and the new sealed title when the version changed it. */
  async advanceVersion(
    id: string,
    change: { latestVersion: number; titleSealed?: Buffer; updatedAt: string },
    transaction: Transaction,
  ): Promise<void> {
    await this.database.sequelize.query(
      `UPDATE prompts SET latest_version = :latestVersion, title_sealed = COALESCE(:titleSealed, title_sealed),
         updated_at = :updatedAt WHERE id = :id`,
      { transaction, replacements: { id, ...change, titleSealed: change.titleSealed ?? null } },
    );
  }

  async archivePrompt(id: string, archivedAt: string, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      'UPDATE prompts SET archived = 1, archived_at = :archivedAt, updated_at = :archivedAt WHERE id = :id',
      { transaction, replacements: { id, archivedAt } },
    );
  }

  /** Lists the versions of a prompt without their bodies, newest first. */
  listVersions(promptId: string): Promise<VersionSummaryRow[]> {
    return this.select<VersionSummaryRow>(
      `SELECT prompt_id, number, key_version, note_sealed, created_by, created_at
       FROM prompt_versions WHERE prompt_id = :promptId ORDER BY number DESC`,
      { promptId },
    );
  }

  async findVersion(
    promptId: string,
    number: number,
    transaction?: Transaction,
  ): Promise<VersionRow | undefined> {
    const rows = await this.select<VersionRow>(
      'SELECT * FROM prompt_versions WHERE prompt_id = :promptId AND number = :number',
      { promptId, number },
      transaction,
    );
    return rows[0];
  }

  async insertVersion(row: VersionRow, transaction: Transaction): Promise<void> {
    await this.database.sequelize.query(
      `INSERT INTO prompt_versions (prompt_id, number, key_version, body_sealed, note_sealed, created_by, created_at)
       VALUES (:prompt_id, :number, :key_version, :body_sealed, :note_sealed, :created_by, :created_at)`,
      { transaction, replacements: { ...row } },
    );
  }

  private select<T extends object>(
    sql: string,
    replacements: Record<string, unknown>,
    transaction?: Transaction,
  ): Promise<T[]> {
    return this.database.sequelize.query<T>(sql, {
      type: QueryTypes.SELECT,
      replacements,
      transaction,
    });
  }
}
