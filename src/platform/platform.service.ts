import { CLEANUP, type DocumentReader, type DocumentStore, STATUS, type TaskTypeValue } from '../documents';
import type { PlatformPubSub } from '../events/pubsub';

/** What `status.json` and `cleanup.json` say about the platform, without the running token. */
export interface PlatformState {
  trainingServer: 'active' | 'sleeping';
  /** Task type of the job training now; `null` while the server sleeps. */
  taskType: TaskTypeValue | null;
  devMode: boolean;
  cleanupActive: boolean;
}

export class PlatformService {
  constructor(
    private readonly documents: DocumentStore,
    private readonly pubsub: PlatformPubSub,
  ) {}

  async state(reader: DocumentReader = this.documents): Promise<PlatformState> {
    const [status, cleanup] = await Promise.all([reader.read(STATUS), reader.read(CLEANUP)]);
    return {
      trainingServer: status.status,
      taskType: status.status === 'active' && status.task_type !== '' ? status.task_type : null,
      devMode: status.dev_mode,
      cleanupActive: cleanup.status === 'active',
    };
  }

  /** Turns maintenance mode on or off; every other key of `status.json` is kept. */
  async setDevMode(enabled: boolean): Promise<PlatformState> {
    await this.documents.update(STATUS, (status) => ({ ...status, dev_mode: enabled }));
    return this.publishState();
  }

  /** Lets the expiry of old models run (`active`) or pauses it (`sleeping`). */
  async setCleanup(active: boolean): Promise<PlatformState> {
    await this.documents.update(CLEANUP, (cleanup) => ({
      ...cleanup,
      status: active ? ('active' as const) : ('sleeping' as const),
    }));
    return this.publishState();
  }

  /** Reads the state and tells `statusChanged` subscribers. */
  async publishState(): Promise<PlatformState> {
    const state = await this.state();
    this.pubsub.publish('STATUS_CHANGED', state);
    return state;
  }
}
