import fs from 'node:fs';

import type { Command } from 'commander';

import { openKeyProvider } from '../../hsm';
import { AuditTrail } from '../audit/trail';
import { loadConfig } from '../platform/config';
import { openDatabase } from '../platform/database';
import { CliError, exitCodes } from './exit-codes';

export function registerVerifyAuditCommand(program: Command): Command {
  return program
    .command('verify-audit')
    .description(
      'Recompute the audit hash chain with the HSM audit key and name the first record that was deleted, reordered or edited.',
    )
    .option('--json', 'print the verification result as JSON')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfig();
      if (!fs.existsSync(config.databaseFile)) {
        throw new CliError(`no appliance database at ${config.databaseFile}; check APPLIANCE_DATA_DIR`, exitCodes.usage);
      }

      let keys;
      try {
        keys = openKeyProvider(config);
      } catch (error) {
        throw new CliError(`the HSM is not available: ${error instanceof Error ? error.message : String(error)}`, exitCodes.unavailable);
      }

      const database = await openDatabase(config.databaseFile);
      try {
        const result = await new AuditTrail(database, keys).verify();

        if (options.json) console.log(JSON.stringify(result, null, 2));
        else if (result.ok) console.log(`audit chain intact: ${result.checked} records, head seq ${result.headSeq}`);
        else console.log(`audit chain BROKEN at seq ${result.firstBroken?.seq}: ${result.firstBroken?.reason}`);

        if (!result.ok) process.exitCode = exitCodes.checkFailed;
      } finally {
        await database.close();
        keys.close();
      }
    });
}
