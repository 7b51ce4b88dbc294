import { DEFAULT_MAX_INPUT_PIXELS } from '../preprocessing/image';

const MiB = 1024 * 1024;

/** Sizes and counts a submitted dataset must stay within. Every byte figure is in bytes. */
export interface DatasetLimits {
  /** Fewest classes (image folders or distinct CSV labels). Default `2`. */
  minClasses: number;
  /** Most classes. Default `10`. */
  maxClasses: number;
  /** Fewest images in one class. Default `10`. */
  minImagesPerClass: number;
  /** Most images in one class. Default `100`. */
  maxImagesPerClass: number;
  /** Most bytes of image files in one class (their sum, uncompressed). Default `10 MiB`. */
  maxClassBytes: number;
  /** Largest single uploaded file: the ZIP, the CSV or one image. Default `110 MiB`. */
  maxUploadBytes: number;
  /** Most entries in a ZIP, folders and ignored files included. Default `2_000`. */
  maxZipEntries: number;
  /** Most bytes the extracted images of a ZIP may add up to. Default `200 MiB`. */
  maxZipUncompressedBytes: number;
  /** Most pixels in one image (one frame); decompression-bomb guard. Default `40_000_000`. */
  maxImagePixels: number;
  /** Most CSV rows, counted after empty rows are dropped. Default `10_000`. */
  maxCsvRows: number;
  /** Largest CSV file. Default `20 MiB`. */
  maxCsvBytes: number;
  /** Longest `input` cell, in characters (Unicode code points). Default `5_000`. */
  maxTextLength: number;
  /** Longest class name or label, in characters (Unicode code points). Default `100`. */
  maxLabelLength: number;
  /**
   * Fewest CSV rows per label. Default `2`: the stratified train/validation split puts at
   * least one row of every label on each side.
   */
  minRowsPerClass: number;
}

export const DEFAULT_DATASET_LIMITS: Readonly<DatasetLimits> = Object.freeze({
  minClasses: 2,
  maxClasses: 10,
  minImagesPerClass: 10,
  maxImagesPerClass: 100,
  maxClassBytes: 10 * MiB,
  maxUploadBytes: 110 * MiB,
  maxZipEntries: 2_000,
  maxZipUncompressedBytes: 200 * MiB,
  maxImagePixels: DEFAULT_MAX_INPUT_PIXELS,
  maxCsvRows: 10_000,
  maxCsvBytes: 20 * MiB,
  maxTextLength: 5_000,
  maxLabelLength: 100,
  minRowsPerClass: 2,
});
