import type { ResourceDescriptor } from '../identity/access/scope';
import type { Folder, PromptPlacement } from './vault';

/**
 * Folder ancestry for access decisions: a grant on a folder reaches the
 * folders under it. Built once per request from the folder list.
 */
export class FolderTree {
  private readonly parents: Map<string, string | null>;

  constructor(folders: readonly Folder[]) {
    this.parents = new Map(folders.map((folder) => [folder.id, folder.parentId]));
  }

  /** Returns the folder and its ancestors, nearest first; empty for no folder or an unknown one. */
  chain(folderId: string | null | undefined): string[] {
    const chain: string[] = [];
    let current = folderId ?? null;
    while (current !== null && this.parents.has(current) && !chain.includes(current)) {
      chain.push(current);
      current = this.parents.get(current) ?? null;
    }
    return chain;
  }

  describePrompt(placement: PromptPlacement): ResourceDescriptor {
    return {
      projectId: placement.projectId,
      folderIds: this.chain(placement.folderId),
      classification: placement.classification,
    };
  }

  describeFolder(folderId: string | null | undefined): ResourceDescriptor {
    return { folderIds: this.chain(folderId) };
  }
}
