import { tf, setBackend } from './src/engine/index.js';
import { wasmThreads } from './src/engine/wasm.js';
const t0 = performance.now();
await setBackend('wasm');
console.log('threads', wasmThreads(), 'init ms', (performance.now() - t0).toFixed(0), 'listeners', process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection'));
const a = tf.randomNormal([1024, 2048]); const b = tf.randomNormal([2048, 512]);
for (let r = 0; r < 3; r++) { const s = performance.now(); const c = tf.matMul(a, b); c.dataSync(); const dt = performance.now() - s; console.log('NN', (2 * 1024 * 2048 * 512 / dt / 1e6).toFixed(1)); c.dispose(); }
const bT = tf.randomNormal([512, 2048]);
for (let r = 0; r < 3; r++) { const s = performance.now(); const c = tf.matMul(a, bT, false, true); c.dataSync(); const dt = performance.now() - s; console.log('NT', (2 * 1024 * 2048 * 512 / dt / 1e6).toFixed(1)); c.dispose(); }
const ids = tf.tensor1d([1, 3, 1, 0], 'int32');
const g = tf.grad((t: tf.Tensor) => tf.gather(t, ids).mul(tf.range(0, 8).reshape([4, 2])).sum())(tf.ones([5, 2]));
g.print();
