/**
 * What the console offers to each role, mirroring the grants in
 * appliance/identity/permissions.ts. The server enforces them; the console only hides what a
 * role cannot use. An unknown role sees nothing.
 */
export interface Permissions {
  /** See the prompt list (titles, folders, tags). */
  listPrompts: boolean;
  /** Create folders and prompts, add versions, archive prompts. */
  editPrompts: boolean;
  /** Open a prompt to read its versions and bodies, beyond the list metadata. */
  readPromptBodies: boolean;
  readAlerts: boolean;
  /** Acknowledge, close and reopen alerts. */
  updateAlerts: boolean;
}

const NO_PERMISSIONS: Permissions = {
  listPrompts: false,
  editPrompts: false,
  readPromptBodies: false,
  readAlerts: false,
  updateAlerts: false,
};

const ROLE_PERMISSIONS: Record<string, Permissions> = {
  admin: {
    listPrompts: true,
    editPrompts: true,
    readPromptBodies: true,
    readAlerts: true,
    updateAlerts: true,
  },
  author: {
    listPrompts: true,
    editPrompts: true,
    readPromptBodies: true,
    readAlerts: false,
    updateAlerts: false,
  },
  analyst: {
    listPrompts: true,
    editPrompts: false,
    readPromptBodies: true,
    readAlerts: true,
    updateAlerts: true,
  },
  // Auditors read alerts and the audit trail; prompts are outside their grant.
  auditor: {
    listPrompts: false,
    editPrompts: false,
    readPromptBodies: false,
    readAlerts: true,
    updateAlerts: false,
  },
};

export function permissionsFor(role: string | undefined): Permissions {
  if (role === undefined || !Object.hasOwn(ROLE_PERMISSIONS, role)) return NO_PERMISSIONS;
  return ROLE_PERMISSIONS[role];
}

/** The page that an empty console address opens: the first section the role may see. */
export function homeSection(permissions: Permissions): 'prompts' | 'alerts' | undefined {
  if (permissions.listPrompts) return 'prompts';
  if (permissions.readAlerts) return 'alerts';
  return undefined;
}
