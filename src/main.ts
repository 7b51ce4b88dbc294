import { ConfigError } from './config';
import { buildApp } from './server/app';

/** Starts the server on the configuration in the environment and stops it on SIGTERM/SIGINT. */
export async function main(): Promise<void> {
  let app: ReturnType<typeof buildApp>;
  try {
    app = buildApp();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }

  const { adminKey } = await app.start();
  if (adminKey.origin === 'generated') {
    // Shown once, on the terminal, never in the structured logs.
    process.stderr.write(
      `\nGenerated an admin key (kept in ${adminKey.file}):\n\n    ${adminKey.key}\n\n` +
        'Send it as "Authorization: Bearer <key>" for admin operations.\n\n',
    );
  }

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    app.logger.info({ signal }, 'Shutting down');
    app.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        app.logger.error({ err: error }, 'Shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
