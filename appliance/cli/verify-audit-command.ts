import type { Command } from 'commander';

import { exitCodes } from './exit-codes';
import { openLocalAppliance } from './local-appliance';

export function registerVerifyAuditCommand(program: Command): Command {
  return program
    .command('verify-audit')
    .description(
      'Recompute the audit hash chain with the HSM audit key and name the first record that was deleted, reordered or edited.',
    )
    .option('--json', 'print the verification result as JSON')
    .action(async (options: { json?: boolean }) => {
      const local = await openLocalAppliance();
      try {
        const result = await local.audit.verify();

        if (options.json) console.log(JSON.stringify(result, null, 2));
        else if (result.ok)
          console.log(`audit chain intact: ${result.checked} records, head seq ${result.headSeq}`);
        else
          console.log(
            `audit chain BROKEN at seq ${result.firstBroken?.seq}: ${result.firstBroken?.reason}`,
          );

        if (!result.ok) process.exitCode = exitCodes.checkFailed;
      } finally {
        await local.close();
      }
    });
}
