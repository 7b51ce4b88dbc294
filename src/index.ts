import { main } from './main';

main().catch((error: unknown) => {
  process.stderr.write(`Flash API failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
