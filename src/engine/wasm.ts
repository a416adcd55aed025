import '@tensorflow/tfjs-backend-wasm';

/** Prepares the wasm backend before `tf.setBackend('wasm')`. */
export async function configureWasm(): Promise<void> {
  // Placeholder until threads in Node are wired up (see kernels/ and wasm threading work).
}
