import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import type { QueryInterface } from 'sequelize';
import { SequelizeStorage, Umzug } from 'umzug';

import type { Database } from './database';
import { logger } from './logger';
import { repoRoot } from './config';

/** The shape every migration file exports. */
export interface Migration {
  up(args: { context: QueryInterface }): Promise<void>;
  down(args: { context: QueryInterface }): Promise<void>;
}

/** Builds the umzug migrator over the migrations of every domain. */
export function createMigrator(database: Database): Umzug<QueryInterface> {
  const context = database.sequelize.getQueryInterface();

  return new Umzug({
    migrations: listMigrationFiles().map((file) => {
      const load = () => import(pathToFileURL(file).href) as Promise<Migration>;
      return {
        name: path.basename(file, '.ts'),
        path: file,
        up: async () => (await load()).up({ context }),
        down: async () => (await load()).down({ context }),
      };
    }),
    context,
    storage: new SequelizeStorage({
      sequelize: database.sequelize,
      tableName: 'schema_migrations',
    }),
    logger: {
      info: (event) => logger.info(event, 'migration'),
      warn: (event) => logger.warn(event, 'migration'),
      error: (event) => logger.error(event, 'migration'),
      debug: (event) => logger.debug(event, 'migration'),
    },
  });
}

/** Lists appliance/<domain>/migrations/*.ts sorted by base name, which starts with a UTC timestamp. */
function listMigrationFiles(): string[] {
  const applianceDir = path.join(repoRoot, 'appliance');
  const files: string[] = [];

  for (const domain of fs.readdirSync(applianceDir, { withFileTypes: true })) {
    const dir = path.join(applianceDir, domain.name, 'migrations');
    if (!domain.isDirectory() || !fs.existsSync(dir)) continue;

    for (const name of fs.readdirSync(dir)) {
      if (name.endsWith('.ts') && !name.endsWith('.test.ts')) files.push(path.join(dir, name));
    }
  }

  return files.sort((a, b) => path.basename(a).localeCompare(path.basename(b)));
}

/** Applies every pending migration and returns their names. */
export async function migrate(database: Database): Promise<string[]> {
  const applied = await createMigrator(database).up();
  return applied.map((migration) => migration.name);
}
