/**
 * Types for the Elastic Common Schema (ECS) events the collectors write.
 * Field names follow ECS 8.x; fields under `system.auth` follow the names the
 * Elastic system integration uses, and `appliance.*` is this product's own
 * namespace for facts that ECS has no field for.
 */

export type EventOutcome = 'success' | 'failure' | 'unknown';

export interface EcsEvent {
  '@timestamp': string;
  message?: string;
  tags?: string[];
  event: {
    kind: 'event' | 'alert' | 'metric' | 'state';
    category?: string[];
    type?: string[];
    action?: string;
    outcome: EventOutcome;
    reason?: string;
    dataset: string;
    module: string;
    original?: string;
    sequence?: number;
    id?: string;
    ingested?: string;
    timezone?: string;
  };
  user?: {
    name?: string;
    id?: string;
    roles?: string[];
    effective?: { name?: string; id?: string };
  };
  source?: { ip?: string; port?: number; domain?: string; address?: string };
  host?: { hostname?: string };
  process?: {
    name?: string;
    pid?: number;
    command_line?: string;
    working_directory?: string;
  };
  log?: {
    file?: { path?: string };
    offset?: number;
    syslog?: { priority?: number; facility?: { code: number }; severity?: { code: number } };
  };
  http?: { request?: { id?: string } };
  system?: {
    auth?: {
      ssh?: { method?: string; signature?: string; invalid_user?: boolean };
      pam?: { module?: string; service?: string; tty?: string; failures?: number };
      sudo?: { tty?: string };
    };
  };
  appliance?: {
    /** Target of an audited request, such as a vault prompt or a user. */
    resource?: { type: string; id?: string };
    audit?: {
      hash: string;
      prev_hash: string;
      /** The audit trail's own outcome (success, failure, denied); ECS outcome has no "denied". */
      outcome: string;
    };
  };
}

/** An event with the deterministic document id it is indexed under. */
export interface IdentifiedEvent {
  id: string;
  event: EcsEvent;
}
