export {
  cgroupCpuQuota,
  DEFAULT_INFERENCE_OPTIONS,
  type DeployedModelRef,
  InferenceEngine,
  type InferenceOptions,
  type InferenceSettings,
  type InferenceStats,
  intraOpThreadsFor,
  sessionOptions,
  usableCores,
} from './inference.engine';
export { ModelNotServableError, type NotServableReason } from './errors';
export { DEFAULT_TOP_K, type LabelProbability, type Prediction } from './prediction';
