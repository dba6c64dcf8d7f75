/**
 * What the console offers to each role. The server enforces the same rules; the console
 * only hides what a role cannot use. An unknown role sees only the prompt list.
 */
export interface Permissions {
  /** Create folders and prompts, add versions, archive prompts. */
  editPrompts: boolean;
  /** Open a prompt to read its versions and bodies, beyond the list metadata. */
  readPromptBodies: boolean;
  readAlerts: boolean;
  /** Acknowledge, close and reopen alerts. */
  updateAlerts: boolean;
}

const NO_PERMISSIONS: Permissions = {
  editPrompts: false,
  readPromptBodies: false,
  readAlerts: false,
  updateAlerts: false,
};

const ROLE_PERMISSIONS: Record<string, Permissions> = {
  admin: { editPrompts: true, readPromptBodies: true, readAlerts: true, updateAlerts: true },
  author: { editPrompts: true, readPromptBodies: true, readAlerts: false, updateAlerts: false },
  analyst: { editPrompts: false, readPromptBodies: true, readAlerts: true, updateAlerts: true },
  // Auditors read the prompt list metadata and alerts, and change nothing.
  auditor: { editPrompts: false, readPromptBodies: false, readAlerts: true, updateAlerts: false },
};

export function permissionsFor(role: string | undefined): Permissions {
  if (role === undefined || !Object.hasOwn(ROLE_PERMISSIONS, role)) return NO_PERMISSIONS;
  return ROLE_PERMISSIONS[role];
}
