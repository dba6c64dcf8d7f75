import { route, type RouteContext, type RouteSpec } from '../http/route';
import {
  folderInput,
  newPromptInput,
  newVersionInput,
  parseBody,
  promptListQuery,
  promptParams,
  versionParams,
} from './schemas';
import type { Permission } from '../identity/permissions';
import { FolderTree } from './placement';
import type { Commit, Vault } from './vault';

/**
 * Folders, prompts and versions. Every GET of one prompt or one version is
 * audited as `vault.prompt.read` with the prompt id as resource id, because
 * the mass-read detection counts exactly that action per user. Bodies are
 * parsed in the handlers (parseBody) so that field names match the console.
 * Each handler checks access on the prompt or folder it touches, since grants
 * can be scoped to a project or a folder tree and limited by classification.
 */
export function vaultRoutes(vault: Vault): RouteSpec[] {
  return [
    route({
      method: 'get',
      path: '/folders',
      action: 'vault.folder.list',
      resource: 'folder',
      access: 'folders:read',
      async handler(context) {
        const [folders, view] = await Promise.all([vault.listFolders(), context.access()]);
        const tree = new FolderTree(folders);
        const items = folders.filter((folder) =>
          view.allows('folders:read', tree.describeFolder(folder.id)),
        );
        return { body: { items } };
      },
    }),

    route({
      method: 'post',
      path: '/folders',
      action: 'vault.folder.create',
      resource: 'folder',
      access: 'folders:create',
      async handler(context) {
        const input = parseBody(folderInput, context.request.body);
        const tree = new FolderTree(await vault.listFolders());
        await context.authorize('folders:create', tree.describeFolder(input.parentId));

        const folder = await vault.createFolder(
          input,
          context.principal!.userId,
          commitNamingCreated(context),
        );
        return { status: 201, body: folder };
      },
    }),

    route({
      method: 'get',
      path: '/prompts',
      action: 'vault.prompt.list',
      resource: 'prompt',
      access: 'prompts:read',
      query: promptListQuery,
      async handler(context) {
        const [tree, view] = await Promise.all([folderTree(vault), context.access()]);
        const items = await vault.listPrompts(context.query, (placement) =>
          view.allows('prompts:read', tree.describePrompt(placement)),
        );
        return { body: { items } };
      },
    }),

    route({
      method: 'post',
      path: '/prompts',
      action: 'vault.prompt.create',
      resource: 'prompt',
      access: 'prompts:create',
      async handler(context) {
        const input = parseBody(newPromptInput, context.request.body);
        const tree = await folderTree(vault);
        await context.authorize(
          'prompts:create',
          tree.describePrompt({
            folderId: input.folderId ?? null,
            projectId: input.projectId ?? null,
            classification: input.classification ?? 'internal',
          }),
        );

        const prompt = await vault.createPrompt(
          input,
          context.principal!.userId,
          commitNamingCreated(context),
        );
        return { status: 201, body: prompt };
      },
    }),

    route({
      method: 'get',
      path: '/prompts/:id',
      action: 'vault.prompt.read',
      resource: 'prompt',
      access: 'prompts:read',
      params: promptParams,
      async handler(context) {
        await authorizePrompt(context, vault, 'prompts:read');
        return { body: await vault.getPrompt(context.params.id) };
      },
    }),

    route({
      method: 'get',
      path: '/prompts/:id/versions',
      action: 'vault.version.list',
      resource: 'prompt',
      access: 'prompts:read',
      params: promptParams,
      async handler(context) {
        await authorizePrompt(context, vault, 'prompts:read');
        return { body: { items: await vault.listVersions(context.params.id) } };
      },
    }),

    route({
      method: 'get',
      path: '/prompts/:id/versions/:number',
      action: 'vault.prompt.read',
      resource: 'prompt',
      access: 'prompts:read',
      params: versionParams,
      async handler(context) {
        await authorizePrompt(context, vault, 'prompts:read');
        return { body: await vault.getVersion(context.params.id, context.params.number) };
      },
    }),

    route({
      method: 'post',
      path: '/prompts/:id/versions',
      action: 'vault.version.create',
      resource: 'prompt',
      access: 'prompts:update',
      params: promptParams,
      async handler(context) {
        await authorizePrompt(context, vault, 'prompts:update');
        const input = parseBody(newVersionInput, context.request.body);
        const prompt = await vault.createVersion(
          context.params.id,
          input,
          context.principal!.userId,
          context.commit,
        );
        return { status: 201, body: prompt };
      },
    }),

    route({
      method: 'post',
      path: '/prompts/:id/archive',
      action: 'vault.prompt.archive',
      resource: 'prompt',
      access: 'prompts:update',
      params: promptParams,
      async handler(context) {
        await authorizePrompt(context, vault, 'prompts:update');
        return { body: await vault.archivePrompt(context.params.id, context.commit) };
      },
    }),
  ];
}

async function folderTree(vault: Vault): Promise<FolderTree> {
  return new FolderTree(await vault.listFolders());
}

/**
 * Checks `permission` on the prompt the path names, where it sits (project,
 * folders) and its classification: the route-level check only saw that the
 * caller has the permission somewhere.
 */
async function authorizePrompt(
  context: RouteContext<{ id: string }, unknown, unknown>,
  vault: Vault,
  permission: Permission,
): Promise<void> {
  const [placement, tree] = await Promise.all([
    vault.placement(context.params.id),
    folderTree(vault),
  ]);
  await context.authorize(permission, tree.describePrompt(placement));
}

/**
 * Returns the request's commit, which also sets the audit resource id to the id of
 * the record the work created. The audit record is written inside the
 * commit, so an id set after it returns would be too late.
 */
export function commitNamingCreated(context: RouteContext<unknown, unknown, unknown>): Commit {
  return (work) =>
    context.commit(async (transaction) => {
      const created = await work(transaction);
      const id = (created as { id?: unknown } | undefined)?.id;
      if (typeof id === 'string') context.resourceId = id;
      return created;
    });
}
