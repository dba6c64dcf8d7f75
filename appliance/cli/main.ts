import { Command, CommanderError } from 'commander';

import { registerAlertsCommand } from './alerts-command';
import { CliError, exitCodeHelp, exitCodes } from './exit-codes';
import { registerIngestCommand } from './ingest-command';
import { registerRecoveryCommand } from './recovery-command';
import { registerKeysCommand } from './keys-command';
import { registerStartCommand } from './start-command';
import { registerStatusCommand } from './status-command';
import { registerVerifyAuditCommand } from './verify-audit-command';

const program = new Command('appliancectl')
  .description(
    'Operate the prompt bank security appliance: start it, check it, feed it logs, read its alerts.',
  )
  .addHelpText('after', exitCodeHelp)
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

for (const register of [
  registerStartCommand,
  registerStatusCommand,
  registerIngestCommand,
  registerAlertsCommand,
  registerVerifyAuditCommand,
  registerKeysCommand,
  registerRecoveryCommand,
]) {
  register(program).addHelpText('after', exitCodeHelp).exitOverride();
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = exitCodeFor(error);
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    // --help and --version end through the same path with code 0.
    return error.exitCode === 0 ? exitCodes.ok : exitCodes.usage;
  }
  if (error instanceof CliError) {
    console.error(`appliancectl: ${error.message}`);
    return error.exitCode;
  }

  console.error(`appliancectl: ${error instanceof Error ? error.message : String(error)}`);
  return exitCodes.unavailable;
}
