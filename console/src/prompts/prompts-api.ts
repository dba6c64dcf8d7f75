import { apiGet, apiPost, segment, withQuery, type Id } from '../lib/api';
import type { Classification } from '../access/access-api';

export interface Folder {
  id: Id;
  name: string;
  parentId: Id | null;
  createdAt: string;
}

/** A prompt as listed, without description and version body. */
export interface PromptSummary {
  id: Id;
  folderId: Id | null;
  title: string;
  latestVersion: number;
  archived: boolean;
  createdAt: string;
  updatedAt: string;
  tags: string[];
  /** Project whose key wraps the prompt's data key, or null for a prompt in no project. */
  projectId: string | null;
  classification: Classification;
}

/** A version as listed, without its body. */
export interface VersionSummary {
  number: number;
  note: string | null;
  createdAt: string;
  /** Account that created the version, as the API identifies it. */
  createdBy: Id;
}

export interface PromptVersion extends VersionSummary {
  body: string;
}

/** A prompt with its latest version. */
export interface Prompt extends PromptSummary {
  description: string | null;
  version: PromptVersion;
}

export interface NewPrompt {
  title: string;
  body: string;
  folderId?: Id;
  description?: string;
  tags?: string[];
  /** The appliance stores `internal` when left out. */
  classification?: Classification;
}

export interface NewVersion {
  body: string;
  note?: string;
  /** A new title for the prompt, sent only when it changes. */
  title?: string;
}

interface ItemList<T> {
  items: T[];
}

export async function listFolders(signal?: AbortSignal): Promise<Folder[]> {
  return (await apiGet<ItemList<Folder>>('/folders', { signal })).items;
}

export function createFolder(name: string, parentId?: Id): Promise<Folder> {
  return apiPost<Folder>('/folders', parentId === undefined ? { name } : { name, parentId });
}

export async function listPrompts(
  filter: { folderId?: string; includeArchived: boolean },
  signal?: AbortSignal,
): Promise<PromptSummary[]> {
  const path = withQuery('/prompts', {
    folderId: filter.folderId,
    includeArchived: String(filter.includeArchived),
  });
  return (await apiGet<ItemList<PromptSummary>>(path, { signal })).items;
}

export function createPrompt(prompt: NewPrompt): Promise<Prompt> {
  return apiPost<Prompt>('/prompts', prompt);
}

export function getPrompt(id: Id, signal?: AbortSignal): Promise<Prompt> {
  return apiGet<Prompt>(`/prompts/${segment(id)}`, { signal });
}

export async function listVersions(id: Id, signal?: AbortSignal): Promise<VersionSummary[]> {
  return (await apiGet<ItemList<VersionSummary>>(`/prompts/${segment(id)}/versions`, { signal }))
    .items;
}

export function getVersion(id: Id, number: number, signal?: AbortSignal): Promise<PromptVersion> {
  return apiGet<PromptVersion>(`/prompts/${segment(id)}/versions/${number}`, { signal });
}

export function createVersion(id: Id, version: NewVersion): Promise<Prompt> {
  return apiPost<Prompt>(`/prompts/${segment(id)}/versions`, version);
}

export function archivePrompt(id: Id): Promise<Prompt> {
  return apiPost<Prompt>(`/prompts/${segment(id)}/archive`);
}
