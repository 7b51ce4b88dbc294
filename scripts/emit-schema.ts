/** Writes `schema/schema.graphql` from the type-graphql classes: `npm run schema`. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import { printPublicSchema } from '../src/server/schema';

/** npm runs scripts from the package root. */
export const SCHEMA_FILE = path.resolve('schema', 'schema.graphql');

if (require.main === module) {
  printPublicSchema().then(
    (sdl) => {
      writeFileSync(SCHEMA_FILE, sdl);
      process.stdout.write(`Wrote ${path.relative(process.cwd(), SCHEMA_FILE)}\n`);
    },
    (error: unknown) => {
      process.stderr.write(`${String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
