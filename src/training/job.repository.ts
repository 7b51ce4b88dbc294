import {
  type DocumentStore,
  FINAL_JOB_STATES,
  isWellFormedToken,
  JOBS_PREFIX,
  type JobRecord,
  jobRecordDocument,
  QUEUE,
  type QueueEntry,
  stagedDatasetKey,
  storeOperation,
} from '../documents';
import { ServerBusyError } from '../errors';

/** Thrown inside a queue update when another supervisor took the job first. */
export class LostClaimError extends Error {
  constructor(token: string) {
    super(`Another supervisor took job ${token}`);
    this.name = 'LostClaimError';
  }
}

/**
 * The queue (`training/queue.json`) and the job records (`training/jobs/<token>/job.json`).
 * Every change is a compare-and-swap through `DocumentStore.update`.
 */
export class JobRepository {
  constructor(
    private readonly documents: DocumentStore,
    /** Jobs that may wait behind the running one. */
    private readonly maxQueue: number,
  ) {}

  /** Room for one more job right now (a cheap early check; `admit` decides). */
  async hasRoom(): Promise<boolean> {
    const queue = await this.documents.read(QUEUE);
    return queue.jobs.length < this.capacity;
  }

  /**
   * Appends the job to the queue if there is room, atomically: of many concurrent admissions
   * exactly the ones that fit succeed. Returns how many jobs are ahead of it.
   */
  async admit(entry: QueueEntry): Promise<number> {
    const queue = await this.documents.update(QUEUE, (current) => {
      if (current.jobs.length >= this.capacity) {
        throw new ServerBusyError(
          this.maxQueue === 0
            ? 'The training server is busy with another job; try again later.'
            : `The training queue is full (${this.maxQueue} jobs waiting); try again later.`,
        );
      }
      return { ...current, jobs: [...current.jobs, entry] };
    });
    return queue.jobs.findIndex((job) => job.token === entry.token);
  }

  async queue(): Promise<QueueEntry[]> {
    return (await this.documents.read(QUEUE)).jobs;
  }

  /** Jobs ahead of `token` in the queue; `null` when it is not queued. */
  async position(token: string): Promise<number | null> {
    const index = (await this.queue()).findIndex((job) => job.token === token);
    return index === -1 ? null : index;
  }

  /**
   * Marks the queue's head as taken by `worker`. `mayTake` sees the head as stored now and
   * decides whether taking it is still right (nobody took it, or its taker died). Taking over
   * from a taker counts as a crash of the job.
   */
  async claimHead(
    token: string,
    worker: NonNullable<QueueEntry['running']>,
    mayTake: (head: QueueEntry) => boolean,
  ): Promise<QueueEntry> {
    const queue = await this.documents.update(QUEUE, (current) => {
      const head = current.jobs[0];
      if (!head || head.token !== token || !mayTake(head)) throw new LostClaimError(token);
      const crashes = head.crashes + (head.running ? 1 : 0);
      return { ...current, jobs: [{ ...head, running: worker, crashes }, ...current.jobs.slice(1)] };
    });
    return queue.jobs[0] as QueueEntry;
  }

  /** Gives a taken job back to the queue (a graceful shutdown): it runs again, not as a crash. */
  async releaseClaim(token: string, worker: string): Promise<void> {
    await this.documents.update(QUEUE, (current) => ({
      ...current,
      jobs: current.jobs.map((job) => (job.token === token && job.running?.worker === worker ? { ...job, running: null } : job)),
    }));
  }

  /** Removes the job from the queue; returns it, or `undefined` if it was not there. */
  async remove(token: string, { onlyIfWaiting = false } = {}): Promise<QueueEntry | undefined> {
    let removed: QueueEntry | undefined;
    await this.documents.update(QUEUE, (current) => {
      removed = current.jobs.find((job) => job.token === token);
      if (!removed || (onlyIfWaiting && removed.running)) {
        removed = undefined;
        return current;
      }
      return { ...current, jobs: current.jobs.filter((job) => job.token !== token) };
    });
    return removed;
  }

  async record(token: string): Promise<JobRecord | null> {
    return (await this.documents.snapshot(jobRecordDocument(token)))?.value ?? null;
  }

  async createRecord(record: JobRecord): Promise<void> {
    await this.documents.write(jobRecordDocument(record.token), record);
  }

  async updateRecord(token: string, change: (record: JobRecord) => JobRecord): Promise<JobRecord> {
    return this.documents.update(jobRecordDocument(token), change);
  }

  async removeRecord(token: string): Promise<void> {
    await this.documents.remove(jobRecordDocument(token));
  }

  /**
   * Deletes the records of finished jobs that ended (or whose model expired or was deleted) before `before`,
   * except those `keep` names (models still deployed) and any job still queued; returns their
   * tokens. Records of unfinished jobs, and folders without a record (a dataset being staged
   * for admission), are never touched.
   */
  async pruneRecords(before: Date, keep: (token: string) => boolean): Promise<string[]> {
    const keys = await storeOperation(() => this.documents.store.list(JOBS_PREFIX));
    const tokens = new Set(keys.map((key) => key.slice(JOBS_PREFIX.length).split('/')[0]!));
    const queued = new Set((await this.queue()).map((job) => job.token));
    const pruned: string[] = [];
    for (const token of tokens) {
      if (!isWellFormedToken(token) || queued.has(token) || keep(token)) continue;
      const record = await this.record(token).catch(() => null); // an unreadable record is left for a person
      if (!record || !FINAL_JOB_STATES.has(record.state)) continue;
      const ended = Date.parse(record.deleted_at ?? record.expired_at ?? record.finished_at ?? '');
      if (!(ended < before.getTime())) continue;
      await storeOperation(() => this.documents.store.delete(stagedDatasetKey(token)));
      await this.removeRecord(token);
      pruned.push(token);
    }
    return pruned;
  }

  /**
   * The job folders (`training/jobs/<token>/`) of jobs not in the queue that may hold what a
   * submission left: a staged dataset, or a record still `QUEUED`; each with its record (`null`
   * when it has none). The record of every job not in the queue is read (a folder without a
   * dataset may be one whose submission stopped before staging it).
   */
  async unqueuedFolders(): Promise<{ token: string; record: JobRecord | null }[]> {
    const keys = await storeOperation(() => this.documents.store.list(JOBS_PREFIX));
    const folders = new Map<string, Set<string>>();
    for (const key of keys) {
      const [token, ...rest] = key.slice(JOBS_PREFIX.length).split('/');
      if (!token || !isWellFormedToken(token)) continue;
      folders.set(token, (folders.get(token) ?? new Set()).add(rest.join('/')));
    }
    // Read after listing: a job admitted in between is seen as queued.
    const queued = new Set((await this.queue()).map((job) => job.token));
    const found = [];
    for (const [token, files] of folders) {
      if (queued.has(token)) continue;
      const record = files.has('job.json') ? await this.record(token).catch(() => undefined) : null;
      if (record === undefined) continue; // an unreadable record is left for a person
      if (files.has('dataset.json') || record?.state === 'QUEUED') found.push({ token, record });
    }
    return found;
  }

  /** Deletes what a submission that never reached the queue stored: its dataset, then its record. */
  async removeSubmission(token: string, { keepRecord = false } = {}): Promise<void> {
    await storeOperation(() => this.documents.store.delete(stagedDatasetKey(token)));
    if (!keepRecord) await this.removeRecord(token);
  }

  private get capacity(): number {
    return this.maxQueue + 1;
  }
}
