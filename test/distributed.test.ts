import type { S3Config } from '../src/config';
import { eventSerializer } from '../src/events/pubsub';
import { S3Store } from '../src/store';
import { type RedisTestServer, redisTestsRun, startRedisServer } from './helpers/redis';
import { type S3TestServer, startS3Server } from './helpers/s3';
import { ADMIN_KEY, startTestServer, type TestServer } from './helpers/server';
import { multipart, sentimentCsv, SUBMIT, subscribe, type Subscription, textInput, waitForState } from './helpers/training';

jest.setTimeout(120_000);

const BUCKET = 'shared-bucket';

type Submitted = { submitTraining: { token: string; state: string } };
type StatusEvent = { statusChanged: { devMode: boolean; cleanupActive: boolean } };
type ProgressEvent = {
  trainingProgress: {
    state: string;
    epoch: number;
    metrics: { epoch: number } | null;
    history: { epoch: number }[];
    model: { token: string; createdAt: string; expiresAt: string | null } | null;
  };
};

const PROGRESS = `subscription($t: ID!) { trainingProgress(token: $t) {
  state epoch metrics { epoch } history { epoch } model { token createdAt expiresAt }
} }`;
const SET_DEV_MODE = 'mutation($on: Boolean!) { setDevMode(enabled: $on) { devMode } }';
const SET_CLEANUP = 'mutation { setCleanup(active: true) { cleanupActive } }';

const submitCsv = (server: TestServer, epochs = 1, rowsPerLabel = 8) =>
  multipart<Submitted>(server, SUBMIT, { input: textInput({ epochs }) }, [
    { path: 'variables.input.dataset', filename: 'reviews.csv', content: sentimentCsv(rowsPerLabel) },
  ]);

const readRecord = async (s3: S3TestServer, token: string) => {
  const store = new S3Store(s3.configFor(BUCKET));
  try {
    return JSON.parse((await store.get(`training/jobs/${token}/job.json`))!.body.toString('utf8'));
  } finally {
    await store.close();
  }
};

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMillis = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMillis;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Waits until a `statusChanged` subscription hears events through Redis: graphql-ws does not
 * say when a subscription is in place, so a harmless change is made until one arrives.
 */
async function untilListening(server: TestServer, subscription: Subscription<StatusEvent>): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (subscription.events.length === 0) {
    if (Date.now() > deadline) throw new Error('The statusChanged subscription heard nothing');
    await server.graphql(SET_CLEANUP, { key: ADMIN_KEY });
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The S3 store, except that once armed, its next read of the queue answers only when the test
 * lets it, as if the answer were slow to come back: whatever happens meanwhile has happened
 * after the reader looked.
 */
class SlowQueueStore extends S3Store {
  private held: { reached: () => void; released: Promise<void> } | undefined;

  constructor(config: S3Config) {
    super(config);
  }

  holdNextQueueRead(): { reached: Promise<void>; release: () => void } {
    let reached!: () => void;
    let release!: () => void;
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    this.held = { reached, released: new Promise<void>((resolve) => (release = resolve)) };
    return { reached: reachedPromise, release };
  }

  override async get(key: string) {
    const answer = await super.get(key);
    await this.hold(key);
    return answer;
  }

  override async getIfChanged(key: string, etag: string) {
    const answer = await super.getIfChanged(key, etag);
    await this.hold(key);
    return answer;
  }

  private async hold(key: string): Promise<void> {
    if (key !== 'training/queue.json' || !this.held) return;
    const { reached, released } = this.held;
    this.held = undefined;
    reached();
    await released;
  }
}

const readyz = async (server: TestServer) => {
  const response = await fetch(`${server.origin}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

const SUITE = 'API replicas and a training server on one S3 store and one Redis';

(redisTestsRun(SUITE) ? describe : describe.skip)(SUITE, () => {
  let s3: S3TestServer;
  let redis: RedisTestServer;
  let env: Record<string, string>;
  /** API replicas: they serve the API and never train. */
  let a: TestServer;
  let b: TestServer;
  let bStore: SlowQueueStore;

  beforeAll(async () => {
    [s3, redis] = await Promise.all([startS3Server(), startRedisServer()]);
    // Long jobs allowed, for one that must still run when it is cancelled.
    env = { ...s3.envFor(BUCKET), FLASH_REDIS_URL: redis.url, FLASH_ROLE: 'api', FLASH_MAX_EPOCHS: '100' };
    // One after the other: the first start writes the seed's documents into the empty bucket.
    a = await startTestServer({ env });
    bStore = new SlowQueueStore(s3.configFor(BUCKET));
    b = await startTestServer({ env, store: bStore });
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([s3?.stop(), redis?.stop()]);
  });

  it('tells a statusChanged subscriber on one replica about dev mode set on the other, which then refuses submissions', async () => {
    const onB = subscribe<StatusEvent>(b, 'subscription { statusChanged { devMode cleanupActive } }', {});
    try {
      await untilListening(b, onB);
      const set = await a.graphql(SET_DEV_MODE, { variables: { on: true }, key: ADMIN_KEY });
      expect(set.data).toEqual({ setDevMode: { devMode: true } });
      await until(() => onB.events.some((event) => event.statusChanged.devMode), 'dev mode to reach replica B');

      const refused = await submitCsv(b);
      expect(refused.errors?.map((error) => error.extensions?.code)).toEqual(['MAINTENANCE']);
    } finally {
      await a.graphql(SET_DEV_MODE, { variables: { on: false }, key: ADMIN_KEY });
      await onB.close();
    }
  });

  it('trains a job on the server that runs the trainer, streams every event of it to subscribers on both replicas, and serves the model on both', async () => {
    // Submitted to an API replica with no training server about: the job waits in the queue.
    const submitted = await submitCsv(a);
    const token = submitted.data?.submitTraining.token;
    if (!token) throw new Error(`submitTraining failed: ${JSON.stringify(submitted.errors)}`);
    const onA = subscribe<ProgressEvent>(a, PROGRESS, { t: token });
    // B's subscription reads the job (QUEUED), then its place in the queue, whose answer is held
    // while the training server starts and takes the job: B must still hear that it did.
    const held = bStore.holdNextQueueRead();
    const onB = subscribe<ProgressEvent>(b, PROGRESS, { t: token });
    await held.reached;
    const trainer = await startTestServer({ env: { ...env, FLASH_ROLE: 'all', FLASH_WORKER_ID: 'trainer' } });
    try {
      await waitForState(a, token, ['PREPARING', 'TRAINING', 'EXPORTING', 'DEPLOYED'], 30_000);
      held.release();
      await Promise.all([onB.completed, onA.completed]);
    } finally {
      held.release();
      await trainer.stop();
    }

    const events = onB.events.map((event) => event.trainingProgress);
    const states = events.map((event) => event.state).filter((state, i, all) => state !== all[i - 1]);
    expect(states).toEqual(['QUEUED', 'PREPARING', 'TRAINING', 'EXPORTING', 'DEPLOYED']);
    // The epoch's metrics arrive once, and the history never goes back.
    expect(events.filter((event) => event.metrics).map((event) => event.metrics?.epoch)).toEqual([1]);
    const lengths = events.map((event) => event.history.length);
    expect(lengths).toEqual([...lengths].sort((x, y) => x - y));
    const deployed = events.at(-1)?.model;
    expect(deployed?.token).toBe(token);
    expect(Number.isNaN(Date.parse(deployed?.createdAt ?? ''))).toBe(false);
    // Both subscribers heard the same events, in the same order.
    expect(onB.events).toEqual(onA.events);

    // The training server ran it, once: its supervisor's id is in the job's lease.
    const record = await readRecord(s3, token);
    expect(record).toMatchObject({ state: 'DEPLOYED', attempts: 1 });
    expect(record.worker).toMatch(/^trainer:/);

    for (const server of [a, b]) {
      const prediction = await server.graphql<{ classifyText: { label: string } }>(
        'mutation($t: ID!) { classifyText(token: $t, text: "a wonderful film") { label } }',
        { variables: { t: token } },
      );
      expect(prediction.errors).toBeUndefined();
      expect(['positive', 'negative']).toContain(prediction.data?.classifyText.label);
    }
  });

  it('stops, on cancelTraining through an API replica, a job the training server runs', async () => {
    const trainer = await startTestServer({ env: { ...env, FLASH_ROLE: 'all', FLASH_WORKER_ID: 'trainer' } });
    try {
      const submitted = await submitCsv(a, 100, 200);
      const token = submitted.data?.submitTraining.token;
      if (!token) throw new Error(`submitTraining failed: ${JSON.stringify(submitted.errors)}`);
      await waitForState(b, token, ['TRAINING'], 30_000);

      const asked = Date.now();
      const cancelled = await b.graphql('mutation($t: ID!) { cancelTraining(token: $t) { state } }', { variables: { t: token } });
      expect(cancelled.data).toEqual({ cancelTraining: { state: 'CANCELLED' } });
      // The training server hears of it at its next lease renewal (every 5 s).
      expect(Date.now() - asked).toBeLessThan(10_000);
      expect(await readRecord(s3, token)).toMatchObject({ state: 'CANCELLED', cancel_requested: true });
      const model = await a.graphql('query($t: ID!) { model(token: $t) { accuracy } }', { variables: { t: token } });
      expect(model.errors?.map((error) => error.extensions?.code)).toEqual(['MODEL_NOT_FOUND']);
    } finally {
      await trainer.stop();
    }
  });

  it('reports Redis in readiness, not ready while Redis is down, and hears events again once it is back', async () => {
    expect(await readyz(b)).toEqual({ status: 200, body: { status: 'ready', store: 's3', redis: 'up' } });
    const onB = subscribe<StatusEvent>(b, 'subscription { statusChanged { devMode cleanupActive } }', {});
    try {
      await untilListening(b, onB);
      await redis.halt();
      await until(async () => (await readyz(b)).status === 503, 'readiness to notice Redis is down');
      expect(await readyz(b)).toEqual({ status: 503, body: { status: 'unavailable', store: 's3', redis: 'down' } });
      // What needs only the store keeps answering.
      const status = await b.graphql<{ status: { devMode: boolean } }>('{ status { devMode } }');
      expect(status.data).toEqual({ status: { devMode: false } });

      await redis.resume();
      await until(async () => (await readyz(b)).status === 200, 'readiness to see Redis back');
      expect((await readyz(a)).body).toEqual({ status: 'ready', store: 's3', redis: 'up' });
      // The subscription on B is in force again: a change made through A reaches it.
      const before = onB.events.length;
      await until(async () => {
        await a.graphql(SET_DEV_MODE, { variables: { on: false }, key: ADMIN_KEY });
        return onB.events.length > before;
      }, 'an event through Redis after its restart');
    } finally {
      await onB.close();
    }
  });
});

describe('events leaving the process', () => {
  it('keep their Dates through the JSON that Redis carries, as subscribers in the same process get them', () => {
    const event = {
      state: 'DEPLOYED',
      model: { createdAt: new Date('2026-12-01T10:00:00.123Z'), expiresAt: null },
      history: [{ epoch: 1 }],
    };
    const received = eventSerializer.parse(eventSerializer.stringify(event)) as typeof event;
    expect(received).toEqual(event);
    expect(received.model.createdAt).toBeInstanceOf(Date);
    const invalid = eventSerializer.parse(eventSerializer.stringify({ at: new Date(Number.NaN) })) as { at: Date };
    expect(invalid.at).toBeInstanceOf(Date);
    expect(invalid.at.getTime()).toBeNaN();
  });
});
