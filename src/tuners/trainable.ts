import type { Module } from '../nn/module.js';

/** `[trainable, all]` parameter counts of `module` (tied parameters once), as PEFT's `get_nb_trainable_parameters`. */
export function countTrainableParameters(module: Module): [number, number] {
  let trainable = 0;
  let all = 0;
  for (const p of module.parameters()) {
    all += p.size;
    if (p.trainable) trainable += p.size;
  }
  return [trainable, all];
}

/** PEFT's `print_trainable_parameters` line: `trainable params: 1,234 || all params: 5,678 || trainable%: 21.7330`. */
export function trainableParametersLine(module: Module): string {
  const [trainable, all] = countTrainableParameters(module);
  const fmt = (n: number) => n.toLocaleString('en-US');
  return `trainable params: ${fmt(trainable)} || all params: ${fmt(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
}
