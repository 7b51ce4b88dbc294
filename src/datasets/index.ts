/**
 * Dataset ingestion for `submitTraining`: uploads streamed to a staging folder, checked
 * against `DatasetLimits`, and turned into an `ImageDataset` or a `TextDataset`. Every refusal
 * is a `BadUserInputError` naming the input field and the file, class or row at fault; any
 * other error is a server failure and propagates as is.
 */
export { DEFAULT_DATASET_LIMITS, type DatasetLimits } from './limits';
export type { UploadedFile, UploadInput } from './uploads';
export type { ImageDataset, ImageIngestOptions, StagedImage } from './image-dataset';
export { ingestImageZip } from './image-zip';
export { checkClassUploads, ingestImageClasses, type ClassUpload } from './image-classes';
export { ingestTextCsv, type TextDataset, type TextIngestOptions } from './text-dataset';
