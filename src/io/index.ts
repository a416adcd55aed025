// Public API of src/io: safetensors, sharded checkpoints, .npy and atomic writes.
export {
  SafetensorsFile,
  SafetensorsBuffer,
  parseSafetensors,
  loadSafetensors,
  serializeSafetensors,
  serializeRawSafetensors,
  saveSafetensors,
  rawToTensor,
  safetensorsDtypeFor,
  safetensorsByteLength,
} from './safetensors.js';
export type {
  SafetensorsDtype,
  SafetensorsFloatDtype,
  SafetensorsTypedArray,
  SafetensorsTypedArrays,
  RawTensor,
  TensorInfo,
  SerializeOptions,
  TensorCollection,
} from './safetensors.js';
export { MAX_HEADER_SIZE } from './safetensors-header.js';
export { float32ToBf16Bits, bf16BitsToFloat32, float32ToF16Bits, f16BitsToFloat32 } from './float16.js';
export { writeFileAtomic, writeJsonAtomic } from './atomic.js';
export {
  loadCheckpoint,
  saveCheckpoint,
  readCheckpointIndex,
  planShards,
  parseShardSize,
  SAFE_WEIGHTS_NAME,
  SAFE_WEIGHTS_INDEX_NAME,
  DEFAULT_MAX_SHARD_SIZE,
} from './checkpoint.js';
export type { CheckpointIndex, SaveCheckpointOptions } from './checkpoint.js';
export { readNpy, writeNpy, loadNpy, saveNpy, npyToTensor, tensorToNpy } from './npy.js';
export type { NpyArray, NpyDtype, NpyTypedArrays, TensorToNpyOptions } from './npy.js';
