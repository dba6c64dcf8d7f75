import os from 'node:os';

import type { Command } from 'commander';

import { HsmError } from '../../hsm/errors';
import { loadConfig } from '../platform/config';
import { createBackup } from '../recovery/backup';
import { RecoveryInputError } from '../recovery/errors';
import { describeEscrow, initRecovery, syncEscrow, type RecoveryContext } from '../recovery/init';
import { restoreBackup } from '../recovery/restore';
import { CliError, exitCodes } from './exit-codes';
import { openLocalAppliance, type LocalAppliance } from './local-appliance';

/**
 * Registers `recovery` (init, escrow-sync, restore) and `backup create`.
 * Returns the `recovery` command; `backup` gets its exit override here.
 */
export function registerRecoveryCommand(program: Command): Command {
  const backup = program
    .command('backup')
    .description('Write consistent copies of the appliance database for disaster recovery.')
    .exitOverride();
  backup
    .command('create')
    .description(
      'Copy the live database with SQLite VACUUM INTO to FILE and write FILE.manifest.json ' +
        '(sha256, recovery key fingerprint, audit head). Admin, on the appliance host.',
    )
    .argument('<FILE>', 'new file for the database copy')
    .exitOverride()
    .action((file: string) =>
      withLocal(async (context) => {
        const manifest = await createBackup(context, file);
        console.log(`backup written: ${file} (${manifest.database.bytes} bytes)`);
        console.log(`sha256 ${manifest.database.sha256}`);
        console.log(
          `recovery key ${manifest.recovery?.fingerprint.slice(0, 8) ?? 'NONE: run `appliancectl recovery init` or this backup needs the old token'}`,
        );
        if (manifest.unescrowedDataKeys > 0) {
          console.error(
            `warning: ${manifest.unescrowedDataKeys} keys are not escrowed; run \`appliancectl recovery escrow-sync\` and take a new backup`,
          );
          process.exitCode = exitCodes.partial;
        }
      }),
    );

  const recovery = program
    .command('recovery')
    .description(
      'Escrow prompt data keys under a recovery key split among custodians (Shamir), and restore a backup onto a new HSM token.',
    );

  recovery
    .command('init')
    .description(
      'Make a recovery key, print one share per custodian (once, stored nowhere) and escrow every data key under it.',
    )
    .requiredOption('--custodian <name>', 'custodian who receives one share (repeat)', collect, [])
    .requiredOption('--threshold <k>', 'shares needed to restore', Number)
    .option('--replace', 'replace the existing recovery key; its shares stop working')
    .exitOverride()
    .action((options: { custodian: string[]; threshold: number; replace?: boolean }) =>
      withLocal(async (context) => {
        const result = await initRecovery(context, {
          custodians: options.custodian,
          threshold: options.threshold,
          replace: options.replace,
        });
        console.log(
          `recovery key ${result.fingerprint.slice(0, 8)} (sha256 ${result.fingerprint}): ${options.threshold} of ${result.shares.length} shares restore it; ${describeEscrow(result.escrowed)}.`,
        );
        console.log(
          'Hand each custodian their own line. The shares are printed only now and stored nowhere.',
        );
        const width = Math.max(...result.shares.map((share) => share.custodian.length));
        for (const { custodian, share } of result.shares) {
          console.log(`  ${custodian.padEnd(width)}  ${share}`);
        }
      }),
    );

  recovery
    .command('escrow-sync')
    .description(
      'Escrow every data key that has no escrow copy yet (prompts made since init); needs no shares.',
    )
    .exitOverride()
    .action(() =>
      withLocal(async (context) => {
        console.log(describeEscrow(await syncEscrow(context)));
      }),
    );

  recovery
    .command('restore')
    .description(
      'Restore a backup into an empty APPLIANCE_DATA_DIR: check its checksum, rebuild the recovery key from the shares ' +
        "and wrap every data key under this machine's HSM master key (made on first use).",
    )
    .requiredOption('--backup <file>', 'database copy written by `appliancectl backup create`')
    .requiredOption(
      '--share <share>',
      'one custodian share (repeat up to the threshold)',
      collect,
      [],
    )
    .exitOverride()
    .action(async (options: { backup: string; share: string[] }) => {
      const config = loadConfig();
      const result = await translateErrors(() =>
        restoreBackup(config, {
          backupFile: options.backup,
          shares: options.share,
          operator: operator(),
        }),
      );
      console.log(
        `restored ${result.databaseFile}: ${result.restoredKeys} keys now wrapped by this token's master key (${result.restoredDataKeys} prompt data keys, ${result.restoredTenantKeys} tenant key versions, which keep the data keys of project prompts as they are)`,
      );
      console.log(
        `old audit chain sealed at seq ${result.sealedAuditHead.seq}; start the appliance with the same APPLIANCE_DATA_DIR`,
      );
    });

  return recovery;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function operator(): string {
  return `cli:${os.userInfo().username}`;
}

async function withLocal(work: (context: RecoveryContext) => Promise<void>): Promise<void> {
  const local: LocalAppliance = await openLocalAppliance();
  try {
    await translateErrors(() =>
      work({
        database: local.database,
        keys: local.keys,
        audit: local.audit,
        operator: operator(),
      }),
    );
  } finally {
    await local.close();
  }
}

/** Bad input ends with exit 2, an HSM failure with exit 3; the message is kept. */
async function translateErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof RecoveryInputError) throw new CliError(error.message, exitCodes.usage);
    if (error instanceof HsmError) {
      throw new CliError(`the HSM operation failed: ${error.message}`, exitCodes.unavailable);
    }
    throw error;
  }
}
