import type { Folder } from './prompts-api';

/** Key under which top-level folders are grouped in `childrenByParent`. */
export const ROOT_KEY = '';

/** Groups folders by the string form of their parent id, sorted by name. */
export function childrenByParent(folders: Folder[]): Map<string, Folder[]> {
  const known = new Set(folders.map((folder) => String(folder.id)));
  const groups = new Map<string, Folder[]>();

  for (const folder of folders) {
    // A folder whose parent is missing from the list is shown at the top level.
    const parent = folder.parentId;
    const key = parent !== null && known.has(String(parent)) ? String(parent) : ROOT_KEY;
    const group = groups.get(key) ?? [];
    group.push(folder);
    groups.set(key, group);
  }

  for (const group of groups.values()) {
    group.sort((a, b) => a.name.localeCompare(b.name));
  }
  return groups;
}

/** Maps each folder id (as a string) to its path, such as `Red team / Jailbreaks`. */
export function folderPaths(folders: Folder[]): Map<string, string> {
  const byId = new Map(folders.map((folder) => [String(folder.id), folder]));
  const paths = new Map<string, string>();

  for (const folder of folders) {
    const names: string[] = [];
    const visited = new Set<string>();
    let current: Folder | undefined = folder;
    // The visited set stops at a parent cycle, which the server should never store.
    while (current && !visited.has(String(current.id))) {
      visited.add(String(current.id));
      names.unshift(current.name);
      current = current.parentId === null ? undefined : byId.get(String(current.parentId));
    }
    paths.set(String(folder.id), names.join(' / '));
  }
  return paths;
}

/** Returns the folders sorted by their path, for folder pickers. */
export function sortedByPath(folders: Folder[], paths: Map<string, string>): Folder[] {
  return [...folders].sort((a, b) =>
    (paths.get(String(a.id)) ?? a.name).localeCompare(paths.get(String(b.id)) ?? b.name),
  );
}
