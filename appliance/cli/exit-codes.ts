/**
 * Exit codes of appliancectl, the same for every command so scripts can
 * branch on them. Documented in `appliancectl --help` and the README.
 */
export const exitCodes = {
  /** The command did what was asked, or the check passed. */
  ok: 0,
  /** The check ran and found a problem: a broken audit chain, a degraded appliance. */
  checkFailed: 1,
  /** Invalid usage or input: unknown option, missing file, bad value. */
  usage: 2,
  /** The appliance or a part it needs (HSM, search engine, database) is not reachable. */
  unavailable: 3,
  /** The work was done only in part: some log lines were rejected, or events wait in the spool. */
  partial: 4,
} as const;

/** An error that ends the command with a given exit code and a message for the operator. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export const exitCodeHelp = `
Exit codes:
  0  success
  1  the check found a problem (broken audit chain, degraded appliance)
  2  invalid usage or input
  3  the appliance, HSM, database or search engine is unreachable
  4  done in part (rejected log lines, events still waiting in the spool)`;
