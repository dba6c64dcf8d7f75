import type { Command } from 'commander';

import type { AuditVerification } from '../audit/checkpoints-trail';
import { exitCodes } from './exit-codes';
import { openLocalAppliance } from './local-appliance';

export function registerVerifyAuditCommand(program: Command): Command {
  return program
    .command('verify-audit')
    .description(
      'Recompute the audit hash chain with the HSM audit key, name the first record that was deleted, reordered or edited, ' +
        'and check the signature of every signed checkpoint.',
    )
    .option('--json', 'print the verification result as JSON')
    .action(async (options: { json?: boolean }) => {
      const local = await openLocalAppliance();
      try {
        const result = await local.audit.verify();

        if (options.json) console.log(JSON.stringify(result, null, 2));
        else printVerification(result);

        if (!result.ok) process.exitCode = exitCodes.checkFailed;
      } finally {
        await local.close();
      }
    });
}

function printVerification(result: AuditVerification): void {
  if (result.firstBroken) {
    console.log(
      `audit chain BROKEN at seq ${result.firstBroken.seq}: ${result.firstBroken.reason}`,
    );
  } else {
    console.log(`audit chain intact: ${result.checked} records, head seq ${result.headSeq}`);
  }

  const { checked, broken } = result.checkpoints;
  if (checked === 0) console.log('signed checkpoints: none written yet');
  else if (!broken.length) console.log(`signed checkpoints intact: ${checked}`);
  for (const checkpoint of broken)
    console.log(`checkpoint at seq ${checkpoint.seq} BROKEN: ${checkpoint.reason}`);
}
