// The one place peft-ts imports TensorFlow.js. Everything else uses `tf` from here, so the engine can change
// underneath (kernels of ours, another runtime) without touching models or tuners.
import * as tf from '@tensorflow/tfjs';

export { tf };
