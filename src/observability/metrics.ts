import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The platform's Prometheus metrics, served at `/metrics`. One registry per app, so that
 * several apps in one process (the tests) keep their own counts. Services get this object and
 * record what they do; they know nothing of HTTP or of how the metrics are read.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly requestDuration = new Histogram({
    name: 'flash_graphql_request_duration_seconds',
    help: 'GraphQL operations, from request to response, by operation name and type.',
    labelNames: ['operation', 'type'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly errors = new Counter({
    name: 'flash_graphql_errors_total',
    help: 'Errors answered to clients, by extensions.code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly inferenceDuration = new Histogram({
    name: 'flash_inference_run_duration_seconds',
    help: 'onnxruntime runs (one batch each), by task type.',
    labelNames: ['task_type'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly batchSize = new Histogram({
    name: 'flash_inference_batch_size',
    help: 'Inputs per onnxruntime run: above 1 when concurrent predictions were merged.',
    labelNames: ['task_type'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });

  readonly trainingJobs = new Counter({
    name: 'flash_training_jobs_total',
    help: 'Training jobs that ended, by outcome (DEPLOYED, FAILED, CANCELLED).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly trainingDuration = new Histogram({
    name: 'flash_training_duration_seconds',
    help: 'Training jobs from start to end, by outcome.',
    labelNames: ['outcome'] as const,
    buckets: [5, 15, 30, 60, 120, 300, 600, 1200, 3600, 7200],
    registers: [this.registry],
  });

  readonly cleanupRuns = new Counter({
    name: 'flash_cleanup_runs_total',
    help: 'Cleanup runs, scheduled or asked for.',
    registers: [this.registry],
  });

  readonly expiredModels = new Counter({
    name: 'flash_cleanup_deleted_models_total',
    help: 'Models cleanup deleted after their time to live.',
    registers: [this.registry],
  });

  constructor({ queueLength }: { queueLength: () => Promise<number> }) {
    collectDefaultMetrics({ register: this.registry, prefix: 'flash_' });
    new Gauge({
      name: 'flash_training_queue_length',
      help: 'Jobs in the training queue, the running one included (read from the store when scraped).',
      registers: [this.registry],
      async collect() {
        // A store that cannot be read leaves the last value rather than failing the scrape.
        await queueLength().then(
          (length) => this.set(length),
          () => undefined,
        );
      },
    });
  }
}
