/**
 * State passed explicitly down a forward call, so adapters never need hooks or patched methods. Models thread
 * it from `forward` to every layer; tuners that need per-call data (X-LoRA's scalings) add their fields here.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export interface ForwardContext {}
