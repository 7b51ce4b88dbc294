import { Cron } from 'croner';
import type { Logger } from 'pino';

import { CLEANUP, type DocumentStore, INFERENCE, STATUS } from '../documents';
import type { ModelService } from '../models/model.service';
import type { Metrics } from '../observability/metrics';
import type { JobRepository } from '../training/job.repository';

/**
 * The seed's `clean` function: deletes models older than their time to live, then the records
 * of jobs that finished (or whose model expired) more than `jobRetentionMillis` ago. Scheduled
 * every `intervalMillis` while `cleanup.json` is active and dev mode is off; an admin can run
 * it at any time.
 */
export class CleanupService {
  private job: Cron | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly documents: DocumentStore,
    private readonly models: ModelService,
    private readonly jobs: JobRepository,
    private readonly intervalMillis: number,
    private readonly jobRetentionMillis: number,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {}

  start(): void {
    // croner's `interval` spaces runs N seconds apart after the first, which would come at once:
    // `startAt` puts the first one an interval away too. `protect` skips a run while one is busy.
    this.job = new Cron(
      '* * * * * *',
      {
        interval: Math.max(1, Math.round(this.intervalMillis / 1000)),
        startAt: new Date(Date.now() + this.intervalMillis),
        protect: true,
        unref: true,
      },
      () => {
        this.running = this.scheduledRun();
        return this.running;
      },
    );
  }

  /** Stops the schedule and waits for a run in progress. */
  async stop(): Promise<void> {
    this.job?.stop();
    await this.running;
  }

  /** Deletes the expired models and old job records now, whatever `cleanup.json` says; returns the models' tokens. */
  async run(now = new Date()): Promise<string[]> {
    const deleted = await this.models.expire(now);
    this.metrics.cleanupRuns.inc();
    this.metrics.expiredModels.inc(deleted.length);
    if (deleted.length > 0) this.logger.info({ deleted: deleted.length }, 'Expired models deleted');
    await this.pruneJobRecords(now);
    return deleted;
  }

  /** Housekeeping after the expiry: a failure is logged and left for the next run, never the caller's. */
  private async pruneJobRecords(now: Date): Promise<void> {
    try {
      const deployed = await this.documents.read(INFERENCE);
      const before = new Date(now.getTime() - this.jobRetentionMillis);
      const pruned = await this.jobs.pruneRecords(before, (token) => Object.hasOwn(deployed, token));
      if (pruned.length > 0) this.logger.info({ pruned: pruned.length }, 'Old job records deleted');
    } catch (error) {
      this.logger.warn({ err: error }, 'Could not delete old job records; the next cleanup tries again');
    }
  }

  private async scheduledRun(): Promise<void> {
    try {
      const [cleanup, status] = await Promise.all([this.documents.read(CLEANUP), this.documents.read(STATUS)]);
      if (cleanup.status !== 'active' || status.dev_mode) return;
      await this.run();
    } catch (error) {
      this.logger.error({ err: error }, 'Scheduled cleanup failed');
    }
  }
}
