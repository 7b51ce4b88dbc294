import { FsStore } from '../../src/store';

/** The staged dataset of a queued job, which the supervisor fetches first when it starts the job. */
const STAGED_DATASET = /^training\/jobs\/[^/]+\/dataset\.json$/;

/**
 * The fs store, except that the supervisor's fetch of a job's staged dataset waits at a gate
 * the test opens or closes. A job taken from the queue then stays `PREPARING` with the seed's
 * lock held for as long as a test needs: the queue's capacity is exact (one running, the rest
 * waiting) however slow the machine, and no trainer process starts unless the test lets it.
 */
export class GatedStore extends FsStore {
  private readonly gate: Promise<void>;
  private openGate!: () => void;
  private closeGate!: (error: Error) => void;

  constructor(root: string) {
    super(root);
    this.gate = new Promise<void>((resolve, reject) => {
      this.openGate = resolve;
      this.closeGate = reject;
    });
    this.gate.catch(() => undefined);
  }

  override async getFile(key: string, destination: string): Promise<boolean> {
    if (STAGED_DATASET.test(key)) await this.gate;
    return super.getFile(key, destination);
  }

  /** Lets every waiting and later fetch through: jobs go on to train. */
  release(): void {
    this.openGate();
  }

  /** Fails every waiting and later fetch: jobs end `FAILED` at once, without a trainer. */
  refuse(): void {
    this.closeGate(new Error('The test closed the gate to the staged datasets'));
  }
}
