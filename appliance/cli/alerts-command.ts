import { Option, type Command } from 'commander';

import {
  alertStatuses,
  ruleIds,
  severities,
  type Alert,
  type AlertStatus,
  type RuleId,
  type Severity,
} from '../alerts/model';
import { AlertStore } from '../alerts/store';
import { CliError, exitCodes } from './exit-codes';
import { openLocalAppliance } from './local-appliance';

interface AlertsOptions {
  json?: boolean;
  status?: AlertStatus;
  severity?: Severity;
  rule?: RuleId;
  entity?: string;
  limit: string;
}

export function registerAlertsCommand(program: Command): Command {
  return program
    .command('alerts')
    .description(
      'List alerts raised by the detections, newest first. The read is recorded in the audit trail.',
    )
    .addOption(new Option('--status <status>', 'only alerts in this state').choices(alertStatuses))
    .addOption(
      new Option('--severity <severity>', 'only alerts of this severity').choices(severities),
    )
    .addOption(new Option('--rule <rule>', 'only alerts of this rule').choices(ruleIds))
    .option('--entity <value>', 'only alerts about this source IP or user name')
    .option('--limit <count>', 'how many alerts to list, from 1 to 1000', '100')
    .option('--json', 'print the alerts as a JSON array')
    .action(async (options: AlertsOptions) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        throw new CliError(
          `--limit must be a whole number from 1 to 1000, not "${options.limit}"`,
          exitCodes.usage,
        );
      }

      const local = await openLocalAppliance();
      try {
        await local.recordCliAction('alerts.alert.list', 'alert');
        const alerts = await new AlertStore(local.database).list({
          status: options.status,
          severity: options.severity,
          ruleId: options.rule,
          entity: options.entity,
          limit,
        });

        if (options.json) console.log(JSON.stringify(alerts, null, 2));
        else printTable(alerts);
      } finally {
        await local.close();
      }
    });
}

function printTable(alerts: Alert[]): void {
  if (!alerts.length) {
    console.log('no alerts');
    return;
  }

  const rows = alerts.map((alert) => [
    alert.lastSeen,
    alert.severity,
    alert.status,
    alert.ruleId,
    `${alert.entity.field}=${alert.entity.value}`,
    String(alert.eventCount),
    alert.id,
  ]);
  const header = ['LAST SEEN', 'SEVERITY', 'STATUS', 'RULE', 'ENTITY', 'EVENTS', 'ID'];
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  for (const row of [header, ...rows]) {
    console.log(
      row
        .map((cell, column) => cell.padEnd(widths[column]))
        .join('  ')
        .trimEnd(),
    );
  }
}
